"""--part i/N and --merge: one build cut into parts run anywhere, merged byte-identical.
(wiki-mrc's parts: tests/test_launch_data.py runs them through the Slurm script.)"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.shards import BuildError

from paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
EXTRACTED = SHARED_DATA / "wiki" / "enwiki-extracted-links"
PARALLEL = SHARED_DATA / "parallel"


def _cli(*args: str) -> dict:
    run = subprocess.run([sys.executable, "-m", "data_prep", *args], cwd=REPO, text=True,
                         capture_output=True, timeout=600,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1]) if run.stdout.strip().startswith("{") \
        else {"stdout": run.stdout}


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.suffix in (".bin", ".idx", ".npy")}


def _counters(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {k: manifest.get(k) for k in ("counts", "reading", "skipped", "files")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from data_prep.synth_large import write_large_wiki
    from data_prep.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("dump")
    dump, _ = write_large_wiki(folder, "en", 600)
    tok = train_tokenizer([dump], vocab_size=2000, out_dir=tmp_path_factory.mktemp("tok"))
    return dump, tok


def test_corpus_and_parallel_parts_merge_to_the_single_build(inputs, tmp_path):
    from data_prep.corpus import build_corpus, build_parallel

    _, tok = inputs
    corpus_input = [next(EXTRACTED.rglob("wiki_00*"))]
    builds = {
        "corpus": lambda out, **kw: build_corpus(corpus_input, "en", tok, out, max_seq_len=128,
                                                 docs_per_shard=7, **kw),
        "parallel": lambda out, **kw: build_parallel(
            PARALLEL / "tatoeba.deu-eng.deu", PARALLEL / "tatoeba.deu-eng.eng", "de", "en", tok,
            out, max_len=64, pairs_per_shard=50, **kw)}
    for name, build in builds.items():
        single, parts = tmp_path / f"{name}-single", tmp_path / f"{name}-parts"
        build(single)
        reports = [build(parts, part=(i, 2)) for i in (1, 0)]
        assert reports[0]["units_missing"] > 0 and reports[1]["units_missing"] == 0
        build(parts, merge_only=True)
        assert _digest(parts) == _digest(single)
        assert _counters(parts) == _counters(single)
    report = _cli("corpus", "--input", str(corpus_input[0]), "--lang", "en", "--tokenizer",
                  str(tok), "--out", str(tmp_path / "cli"), "--docs-per-shard", "7", "--part", "0/40")
    assert report["part"] == "0/40" and report["units_missing"] > 0


def test_a_bad_part_is_refused(inputs, tmp_path):
    dump, tok = inputs
    run = subprocess.run([sys.executable, "-m", "data_prep", "wiki-mrc", "--input", str(dump),
                          "--lang", "en", "--tokenizer", str(tok), "--out", str(tmp_path / "o"),
                          "--part", "3/3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "0 <= i < N" in run.stderr


def test_a_part_builds_its_units_and_merge_wants_them_all(tmp_path):
    from data_prep.shards import ShardedBuild

    part = ShardedBuild(tmp_path, "corpus", {"x": 1}, resume=False, part=(1, 3))
    assert part.pending(8) == [1, 4, 7]
    other = ShardedBuild(tmp_path, "corpus", {"x": 1}, resume=False, part=(0, 3))  # shares .work
    assert other.pending(8) == [0, 3, 6]
    merge = ShardedBuild(tmp_path, "corpus", {"x": 1}, resume=False, merge_only=True)
    assert merge.pending(8) == []
    with pytest.raises(BuildError, match="cannot merge: 8 units not built"):
        merge.merge(8, {})
    with pytest.raises(BuildError, match="different parameters"):
        ShardedBuild(tmp_path, "corpus", {"x": 2}, resume=False, part=(2, 3))
