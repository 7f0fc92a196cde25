"""--part i/N and --merge: one build cut into parts run anywhere, merged byte-identical."""

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


def test_mrc_parts_merge_to_the_single_build(inputs, tmp_path):
    from data_prep.mrc import MRCParams, build_wiki_mrc

    dump, tok = inputs
    params = MRCParams(lang="en", min_mentions=3, entities_per_unit=8)
    single, parts = tmp_path / "single", tmp_path / "parts"
    build_wiki_mrc(dump, tok, single, params, progress=False)

    def part(i: int) -> dict:
        return build_wiki_mrc(dump, tok, parts, params, part=(i, 3), progress=False)

    assert part(0)["waiting_for_read_parts"] == [1, 2]
    assert part(2)["waiting_for_read_parts"] == [1]
    last = part(1)  # the last to read merges the store, builds its units
    assert last["part"] == "1/3" and last["units_missing"] > 0
    with pytest.raises(BuildError, match="cannot merge"):  # parts 0 and 2 built no unit yet
        build_wiki_mrc(dump, tok, parts, params, merge_only=True, progress=False)
    assert part(0)["units_missing"] > 0 and part(2)["units_missing"] == 0
    _cli("wiki-mrc", "--input", str(dump), "--lang", "en", "--tokenizer", str(tok), "--out",
         str(parts), "--min-mentions", "3", "--entities-per-unit", "8", "--merge")
    assert _digest(parts) == _digest(single) and _digest(single)
    assert _counters(parts) == _counters(single)
    assert not (parts / ".work").exists()


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
