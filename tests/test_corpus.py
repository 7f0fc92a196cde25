"""data_prep.corpus: monolingual and parallel token datasets, resumable and worker-independent."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_prep.__main__ import main
from data_prep.corpus import build_corpus, build_parallel, pack_segments
from data_prep.format import CorpusDataset, ParallelDataset, read_manifest
from data_prep.shards import BuildError
from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer
from paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
PARALLEL = DATA / "parallel"

pytestmark = pytest.mark.skipif(not PARALLEL.is_dir(), reason=f"test data missing: {PARALLEL}")


def read_lines(name: str) -> list[str]:
    return (PARALLEL / name).read_text(encoding="utf-8").splitlines()


def digest(folder: Path, prefix: str) -> tuple[str, str]:
    return tuple(hashlib.sha256((folder / f"{prefix}{ext}").read_bytes()).hexdigest()
                 for ext in (".bin", ".idx"))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return train_tokenizer(sorted(PARALLEL.glob("tatoeba.*")), 2000,
                           tmp_path_factory.mktemp("tok") / "tok")


@pytest.fixture(scope="session")
def tok(tokenizer_dir):
    return load_tokenizer(tokenizer_dir)


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> tuple[Path, list[list[str]]]:
    """Tatoeba sentences of four languages grouped into documents of 1–6 lines, one document
    with an undecodable line, one with only such a line, and one very long document."""
    rng = np.random.default_rng(0)
    sentences = [s for name in ("tatoeba.rus-eng.rus", "tatoeba.cmn-eng.cmn",
                                "tatoeba.tha-eng.tha", "tatoeba.deu-eng.deu")
                 for s in read_lines(name)[:60]]
    docs, i = [], 0
    while i < len(sentences):
        n = int(rng.integers(1, 7))
        docs.append(sentences[i:i + n])
        i += n
    docs.append(read_lines("tatoeba.deu-eng.eng")[:80])  # longer than one segment
    raw = b"\n\n\n".join("\n".join(d).encode() for d in docs[:5])
    raw += b"\n\nkept line\n\xff\xfe broken\n\n\xc3\x28\n\n"
    raw += b"\n\n".join("\n".join(d).encode() for d in docs[5:])
    path = tmp_path_factory.mktemp("docs") / "docs.txt"
    path.write_bytes(raw + b"\n")
    expected = docs[:5] + [["kept line"]] + docs[5:]  # the all-invalid document is skipped
    return path, expected


def test_pack_segments():
    ids = [np.arange(n, dtype=np.int32) for n in (3, 4, 11, 2)]
    segments = pack_segments(ids, 5)
    assert [len(s) for s in segments] == [3, 4, 5, 5, 3]  # the tail of 11 joins the 2
    assert np.array_equal(np.concatenate(segments), np.concatenate(ids))


def test_corpus_round_trip_and_manifest(documents, tokenizer_dir, tok, tmp_path):
    path, expected = documents
    manifest = build_corpus([path], "mul", tokenizer_dir, tmp_path / "c", max_seq_len=64,
                            docs_per_shard=7)
    ds = CorpusDataset(tmp_path / "c")
    assert len(ds) == len(expected) == manifest["documents"]
    exact = 0
    for i, lines in enumerate(expected):
        segments = ds[i]
        assert all(0 < len(s) <= 62 for s in segments)
        ids = np.concatenate(segments).tolist()
        text = " ".join(lines)
        assert ids == tok(text, add_special_tokens=False).input_ids
        if tok.decode(ids) == text:
            exact += 1
    assert exact >= len(expected) * 0.7  # the rest differ only by NFKC normalisation or <unk>
    assert len(ds[len(expected) - 1]) > 5  # the long document spans several segments
    assert manifest["skipped"] == {"empty": 1, "invalid_utf8": 2}
    assert manifest["lines"] == sum(len(d) for d in expected)
    assert manifest["segments"] == sum(len(ds[i]) for i in range(len(ds)))
    assert manifest["tokens"] == sum(len(s) for i in range(len(ds)) for s in ds[i])
    assert manifest["tokenizer"] == tokenizer_info(tok)
    assert manifest["lang"] == "mul" and manifest["params"]["max_seq_len"] == 64


def test_corpus_workers_and_compression_do_not_change_the_output(documents, tokenizer_dir,
                                                                 tmp_path):
    path, _ = documents
    gz = tmp_path / "docs.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    build_corpus([path], "mul", tokenizer_dir, tmp_path / "w1", max_seq_len=64, docs_per_shard=7)
    build_corpus([path], "mul", tokenizer_dir, tmp_path / "w2", max_seq_len=64, docs_per_shard=7,
                 workers=2)
    build_corpus([gz], "mul", tokenizer_dir, tmp_path / "gz", max_seq_len=64, docs_per_shard=7,
                 workers=2)
    reference = digest(tmp_path / "w1", "corpus")
    assert digest(tmp_path / "w2", "corpus") == reference
    assert digest(tmp_path / "gz", "corpus") == reference


def test_corpus_reads_wikiextractor_json(tokenizer_dir, tok, tmp_path):
    with bz2.open(DATA / "wiki" / "enwiki-extracted-links" / "AA" / "wiki_00.bz2", "rb") as f:
        rows = [next(f) for _ in range(6)]
    source = tmp_path / "wiki_00.bz2"
    source.write_bytes(bz2.compress(b"".join(rows)))
    manifest = build_corpus([source], "en", tokenizer_dir, tmp_path / "j", docs_per_shard=4)
    ds = CorpusDataset(tmp_path / "j")
    assert manifest["documents"] == len(ds) == 6
    first = tok.decode(np.concatenate(ds[0]).tolist())
    assert first.startswith("Anarchism is a political philosophy that advocates self-governed")
    assert "href" not in first and "<a" not in first


def write_pairs(folder: Path) -> tuple[Path, Path, dict]:
    src = read_lines("tatoeba.deu-eng.deu")[:100]
    tgt = read_lines("tatoeba.deu-eng.eng")[:100]
    src[3], tgt[7] = "", "   "  # empty sides
    long = " ".join(src[:40])
    src[10] = long  # too long for --max-len 64
    src_bytes = [s.encode() for s in src]
    src_bytes[20] = b"Kaputt \xff\xfe"
    (folder / "de.txt").write_bytes(b"\n".join(src_bytes) + b"\n")
    (folder / "en.txt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    kept = [(s, t) for i, (s, t) in enumerate(zip(src, tgt)) if i not in (3, 7, 10, 20)]
    return folder / "de.txt", folder / "en.txt", {"kept": kept}


def test_parallel_round_trip_counts_and_workers(tokenizer_dir, tok, tmp_path):
    src, tgt, info = write_pairs(tmp_path)
    manifest = build_parallel(src, tgt, "de", "en", tokenizer_dir, tmp_path / "p1", max_len=64,
                              pairs_per_shard=9)
    assert manifest["skipped"] == {"empty": 2, "invalid_utf8": 1, "too_long": 1}
    assert manifest["pairs"] == len(info["kept"]) == 96
    assert (manifest["lang"], manifest["src_lang"], manifest["tgt_lang"]) == ("de-en", "de", "en")
    ds = ParallelDataset(tmp_path / "p1")
    assert len(ds) == 96
    for i, (src_text, tgt_text) in enumerate(info["kept"]):
        src_ids, tgt_ids = ds[i]
        assert tok.decode(src_ids) == src_text and tok.decode(tgt_ids) == tgt_text
    assert manifest["src_tokens"] == sum(len(ds[i][0]) for i in range(len(ds)))
    build_parallel(src, tgt, "de", "en", tokenizer_dir, tmp_path / "p2", max_len=64,
                   pairs_per_shard=9, workers=2)
    assert digest(tmp_path / "p1", "parallel") == digest(tmp_path / "p2", "parallel")


def test_parallel_errors(tokenizer_dir, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "b.txt").write_text("eins\nzwei\n")
    with pytest.raises(ValueError, match="has 3 lines but .* has 2"):
        build_parallel(tmp_path / "a.txt", tmp_path / "b.txt", "en", "de", tokenizer_dir,
                       tmp_path / "out")
    rc = main(["parallel", "--src", str(tmp_path / "a.txt"), "--tgt", str(tmp_path / "nope"),
               "--src-lang", "en", "--tgt-lang", "de", "--tokenizer", str(tokenizer_dir),
               "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "input not found" in err


def test_kill_and_resume_is_byte_identical(tokenizer_dir, tmp_path):
    src, tgt = PARALLEL / "tatoeba.rus-eng.rus", PARALLEL / "tatoeba.rus-eng.eng"
    args = dict(max_len=128, pairs_per_shard=2)
    build_parallel(src, tgt, "ru", "en", tokenizer_dir, tmp_path / "ref", **args)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "data_prep", "parallel", "--src", str(src), "--tgt",
               str(tgt), "--src-lang", "ru", "--tgt-lang", "en", "--tokenizer",
               str(tokenizer_dir), "--out", str(out), "--max-len", "128",
               "--pairs-per-shard", "2"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    shards = out / ".work" / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if shards.is_dir() and len(list(shards.glob("*.json"))) >= 20:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(list(shards.glob("*.json")))
    assert not (out / "manifest.json").exists() and 20 <= committed < 500
    with pytest.raises(BuildError, match="holds an interrupted build"):
        build_parallel(src, tgt, "ru", "en", tokenizer_dir, out, **args)
    with pytest.raises(BuildError, match="max_len: 128 -> 64"):
        build_parallel(src, tgt, "ru", "en", tokenizer_dir, out, max_len=64, pairs_per_shard=2,
                       resume=True)
    manifest = build_parallel(src, tgt, "ru", "en", tokenizer_dir, out, resume=True, **args)
    assert digest(out, "parallel") == digest(tmp_path / "ref", "parallel")
    assert manifest == read_manifest(tmp_path / "ref")
    again = build_parallel(src, tgt, "ru", "en", tokenizer_dir, out, resume=True, **args)
    assert again == manifest  # a finished build is returned as is
    with pytest.raises(BuildError, match="already holds a finished build"):
        build_parallel(src, tgt, "ru", "en", tokenizer_dir, out, **args)


def test_corpus_manifest_is_json_with_params(documents, tokenizer_dir, tmp_path):
    path, _ = documents
    build_corpus([path], "mul", tokenizer_dir, tmp_path / "c", docs_per_shard=50)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["params"]["inputs"][0]["path"] == str(path.resolve())
    assert manifest["params"]["docs_per_shard"] == 50 and manifest["kind"] == "corpus"


def multi_sentence_documents(folder: Path, tok) -> Path:
    """20 documents of 4 lines, each line three tatoeba sentences (ending in . ? !, at most 40
    ids), so that a 62-id budget fits every sentence but not every line."""
    sentences = [s for s in read_lines("tatoeba.deu-eng.deu") + read_lines("tatoeba.fra-eng.fra")
                 if s[-1] in ".?!" and len(tok(s, add_special_tokens=False).input_ids) <= 40]
    lines = [" ".join(sentences[i:i + 3]) for i in range(0, 240, 3)]
    path = folder / "sentences.txt"
    path.write_text("\n\n".join("\n".join(lines[i:i + 4]) for i in range(0, 80, 4)) + "\n",
                    encoding="utf-8")
    return path


# a sentence end, with the quotes the sentencizer keeps after it (a quote token that follows
# the final punctuation stays with the sentence, spaCy's rule for closing quotes)
SENTENCE_END = re.compile(r"""[.?!][\s"'“”„«»]*$""")


def test_corpus_sentences_cut_segments_at_sentence_ends(tokenizer_dir, tok, tmp_path):
    path = multi_sentence_documents(tmp_path, tok)
    args = dict(max_seq_len=64, docs_per_shard=6)
    lines_mode = build_corpus([path], "mul", tokenizer_dir, tmp_path / "lines", **args)
    rc = main(["corpus", "--input", str(path), "--lang", "mul", "--tokenizer", str(tokenizer_dir),
               "--out", str(tmp_path / "sent"), "--max-seq-len", "64", "--docs-per-shard", "6",
               "--sentences"])
    sentences_mode = read_manifest(tmp_path / "sent")
    assert rc == 0 and sentences_mode["params"]["sentences"] is True
    assert "sentences" not in lines_mode["params"]
    by_lines, by_sentences = CorpusDataset(tmp_path / "lines"), CorpusDataset(tmp_path / "sent")
    assert len(by_lines) == len(by_sentences) == 20
    cut_inside = 0
    for i in range(20):
        assert np.array_equal(np.concatenate(by_lines[i]), np.concatenate(by_sentences[i]))
        assert all(0 < len(s) <= 62 for s in by_sentences[i])
        assert all(SENTENCE_END.search(tok.decode(s)) for s in by_sentences[i])
        cut_inside += sum(not SENTENCE_END.search(tok.decode(s)) for s in by_lines[i])
    assert cut_inside > 10  # line packing cuts sentences; sentence packing never does
    for manifest, ds in ((lines_mode, by_lines), (sentences_mode, by_sentences)):
        assert manifest["adjacent_pairs"] == sum(len(ds[i]) - 1 for i in range(len(ds)))
        assert manifest["adjacent_pairs"] == manifest["segments"] - manifest["documents"]
    build_corpus([path], "mul", tokenizer_dir, tmp_path / "sent2", sentences=True, workers=2,
                 **args)
    assert digest(tmp_path / "sent2", "corpus") == digest(tmp_path / "sent", "corpus")


def test_corpus_default_packs_lines_as_before(documents, tokenizer_dir, tok, tmp_path):
    path, expected = documents
    manifest = build_corpus([path], "mul", tokenizer_dir, tmp_path / "c", max_seq_len=64,
                            docs_per_shard=7)
    ds = CorpusDataset(tmp_path / "c")
    for i, lines in enumerate(expected):
        reference = pack_segments([np.asarray(tok(line, add_special_tokens=False).input_ids,
                                              dtype=np.int32) for line in lines], 62)
        assert [s.tolist() for s in ds[i]] == [s.tolist() for s in reference]
    assert "sentences" not in manifest["params"]
    assert manifest["adjacent_pairs"] == sum(len(ds[i]) - 1 for i in range(len(ds)))
