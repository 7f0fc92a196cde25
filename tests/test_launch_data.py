"""launch_scripts/wiki_mrc_slurm.sh: the data build as Slurm job arrays, run here through a
stand-in `sbatch` that executes each array task in turn."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "launch_scripts" / "wiki_mrc_slurm.sh"

# runs an array's tasks one after another under /bin/sh, as Slurm's --wrap does
FAKE_SBATCH = r"""#!/bin/bash
array=0-0; wrap=""
while [[ $# -gt 0 ]]; do
  case $1 in --array=*) array=${1#--array=} ;; --wrap) wrap=$2; shift ;; esac; shift
done
echo "$wrap" >> "$SBATCH_LOG"
for ((i=${array%-*}; i<=${array#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i sh -c "$wrap" >&2 || exit 1; done
echo $RANDOM
"""


def _env(tmp_path: Path, **extra: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable,
            "WORKERS": "1", "SBATCH_LOG": str(tmp_path / "sbatch.log"),
            "TOKENIZERS_PARALLELISM": "false", **extra}


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join((folder / f"mrc{s}").read_bytes()
                                   for s in (".bin", ".idx", ".groups.npy"))).hexdigest()


def test_parts_arrays_build_what_one_machine_builds(tmp_path):
    from data_prep.mrc import MRCParams, build_wiki_mrc
    from data_prep.synth import write_synthetic_wiki
    from data_prep.tokenizer import train_tokenizer

    (dump,) = write_synthetic_wiki(tmp_path / "dumps", ["en"], articles_per_lang=60)
    tok = train_tokenizer([dump], vocab_size=1500, out_dir=tmp_path / "tok")
    build_wiki_mrc(dump, tok, tmp_path / "single", MRCParams(lang="en"), progress=False)
    run = subprocess.run(["bash", str(SCRIPT), "parts"], capture_output=True, text=True,
                         timeout=600, env=_env(tmp_path, DUMP=str(dump), LANG_CODE="en",
                                               PARTS="2", TOKENIZER=str(tok),
                                               OUT=str(tmp_path / "parts")))
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = (tmp_path / "sbatch.log").read_text().splitlines()
    assert len(jobs) == 3 and jobs[-1].endswith("--merge")
    # read pass: part 0 waits for part 1, which merges the store and builds its units
    assert '"waiting_for_read_parts": [1]' in run.stderr and '"part": "1/2"' in run.stderr
    assert _digest(tmp_path / "parts") == _digest(tmp_path / "single")


def test_langs_array_commands(tmp_path):
    """Task k of the languages array builds the k-th language: its --wrap command, run under
    /bin/sh with a stand-in Python that prints its arguments."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\necho "$@"\n')
    stub.chmod(0o755)
    run = subprocess.run(["bash", str(SCRIPT), "langs"], capture_output=True, text=True,
                         env={**os.environ, "DRY_RUN": "1", "TOKENIZER": "/t", "OUT": "/o",
                              "DUMPS": "/d", "LANGS": "en,de,zh", "PYTHON": str(stub)},
                         timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [shlex.split(line) for line in run.stderr.splitlines() if line.startswith("sbatch")]
    assert len(lines) == 2 and "--array=0-2" in lines[0]
    assert any(a.startswith("--dependency=afterok:") for a in lines[1])
    task = lines[0][lines[0].index("--wrap") + 1]
    for k, lang in enumerate(["en", "de", "zh"]):
        out = subprocess.run(["sh", "-c", task], env={"SLURM_ARRAY_TASK_ID": str(k)},
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[out.index("--langs") + 1] == lang and "--input" in out
    summary = lines[1][lines[1].index("--wrap") + 1]
    assert "--langs en,de,zh" in summary
