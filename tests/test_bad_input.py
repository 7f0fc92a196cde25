"""Bad input never passes silently: inputs that are no dump / corpus, a --lang that contradicts the
dump, an unwritable --out, a failed start that would block the corrected re-run, malformed JSON
lines, wrongly typed predictions, and the --max-article-chars limit."""

from __future__ import annotations

import bz2
import json
import os
import random
from pathlib import Path

import pytest

from data_prep.__main__ import main
from data_prep.corpus import build_corpus
from data_prep.mrc import MRCParams, build_wiki_mrc
from data_prep.shards import ShardedBuild, write_shard
from data_prep.wiki import read_wiki
from finetune.evaluate import main as evaluate_main
from paths import SHARED_DATA

PARALLEL = SHARED_DATA / "parallel"
EXTRACTED = SHARED_DATA / "wiki" / "enwiki-extracted-links" / "AA" / "wiki_00.bz2"
HTML = b"<!DOCTYPE html>\n<html><head><title>Lyon</title></head><body><p>Lyon</p></body></html>\n"
SQUAD = {"version": "1.1", "data": [{"title": "Lyon", "paragraphs": [
    {"context": "Lyon is a city.", "qas": [{"id": "q1", "question": "What?",
                                            "answers": [{"text": "city", "answer_start": 10}]}]}]}]}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))
RANDOM = random.Random(0).randbytes(4096)

# name -> (file content, what the error says it looks like)
NOT_WIKI = {
    "empty": (b"", "is empty"),
    "html": (HTML, "an HTML page"),
    "squad": (json.dumps(SQUAD).encode(), "SQuAD-style JSON"),
    "squad_pretty": (json.dumps(SQUAD, indent=2).encode(), "SQuAD-style JSON"),
    "png": (PNG, "a PNG image"),
    "random": (RANDOM, "binary data"),
}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    from data_prep.tokenizer import train_tokenizer

    return train_tokenizer([PARALLEL / "tatoeba.deu-eng.eng", PARALLEL / "tatoeba.deu-eng.deu"],
                           2000, tmp_path_factory.mktemp("tok") / "tok")


@pytest.fixture(scope="module")
def de_dump(tmp_path_factory) -> Path:
    from data_prep.synth import write_synthetic_wiki

    (path,) = write_synthetic_wiki(tmp_path_factory.mktemp("synth"), ["de"], articles_per_lang=40)
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def _no_blocking_leftover(out: Path) -> None:
    assert not (out / ".work").exists() and not (out / "manifest.json").exists()


def _wiki_mrc(input_path, tokenizer_dir, out, *extra: str) -> int:
    return main(["wiki-mrc", "--input", str(input_path), "--lang", "en", "--tokenizer",
                 str(tokenizer_dir), "--out", str(out), "--no-progress", *extra])


# ------------------------------------------------------------------ 1. inputs that are no input


@pytest.mark.parametrize("name", sorted(NOT_WIKI))
def test_wiki_mrc_refuses_files_that_are_no_wiki_input(name, tokenizer_dir, tmp_path, capsys):
    content, looks = NOT_WIKI[name]
    path = tmp_path / f"{name}.json"
    path.write_bytes(content)
    assert _wiki_mrc(path, tokenizer_dir, tmp_path / "out") == 2
    err = _error(capsys)
    assert str(path) in err and looks in err, err
    _no_blocking_leftover(tmp_path / "out")


def test_wiki_mrc_refuses_a_folder_of_files_that_are_no_wiki_input(tokenizer_dir, tmp_path,
                                                                   capsys):
    folder = tmp_path / "extracted" / "AA"
    folder.mkdir(parents=True)
    (folder / "wiki_00").write_bytes(b"")
    (folder / "wiki_01").write_bytes(HTML)
    (folder / "wiki_02.bz2").write_bytes(bz2.compress(PNG))
    assert _wiki_mrc(folder.parent, tokenizer_dir, tmp_path / "out") == 2
    err = _error(capsys)
    assert "no wiki input found" in err and "wiki_00 is empty" in err and "2 more" in err
    _no_blocking_leftover(tmp_path / "out")


def test_a_stray_bad_file_beside_real_input_is_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "extracted" / "AA"
    folder.mkdir(parents=True)
    (folder / "wiki_00.bz2").write_bytes(EXTRACTED.read_bytes())
    (folder / "wiki_01").write_bytes(HTML)
    with caplog.at_level("WARNING", logger="data_prep.wiki"):
        corpus = read_wiki(folder.parent, "en", progress=False)
    assert len(corpus.articles) > 10
    assert "wiki_01 is an HTML page" in caplog.text


@pytest.mark.parametrize("name", ["empty", "html", "squad", "squad_pretty", "png", "random"])
def test_corpus_refuses_files_that_are_no_corpus(name, tokenizer_dir, tmp_path, capsys):
    content, looks = NOT_WIKI[name]
    good = tmp_path / "good.txt"
    good.write_text("One document.\n\nAnother one.\n", encoding="utf-8")
    path = tmp_path / f"{name}.txt"
    path.write_bytes(content)
    assert main(["corpus", "--input", str(good), str(path), "--lang", "en", "--tokenizer",
                 str(tokenizer_dir), "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert str(path) in err and looks in err, err
    _no_blocking_leftover(tmp_path / "out")


@pytest.mark.parametrize("name", ["empty", "png", "random"])
def test_parallel_refuses_empty_or_binary_sides(name, tokenizer_dir, tmp_path, capsys):
    content, looks = NOT_WIKI[name]
    src, tgt = tmp_path / "src.txt", tmp_path / f"{name}.txt"
    src.write_text("one\ntwo\n", encoding="utf-8")
    tgt.write_bytes(content)
    assert main(["parallel", "--src", str(src), "--tgt", str(tgt), "--src-lang", "en",
                 "--tgt-lang", "de", "--tokenizer", str(tokenizer_dir),
                 "--out", str(tmp_path / "out")]) == 2
    err = _error(capsys)
    assert str(tgt) in err and looks in err, err
    _no_blocking_leftover(tmp_path / "out")


# ------------------------------------------------------------------ 2. --lang against the dump


def test_dump_language_reads_the_header(de_dump, tmp_path):
    from data_prep.wiki import dump_language

    assert dump_language(de_dump) == "de"
    assert dump_language(EXTRACTED) is None  # JSON lines carry no language
    bare = tmp_path / "bare.xml"
    bare.write_text("<mediawiki><siteinfo></siteinfo><page><title>A</title><ns>0</ns>"
                    "<revision><text>a</text></revision></page></mediawiki>", encoding="utf-8")
    assert dump_language(bare) is None
    by_dbname = tmp_path / "db.xml"
    by_dbname.write_text("<mediawiki><siteinfo><dbname>frwiki</dbname></siteinfo></mediawiki>",
                         encoding="utf-8")
    assert dump_language(by_dbname) == "fr"


def test_lang_contradicting_the_dump_is_refused_unless_forced(de_dump, tokenizer_dir, tmp_path,
                                                              capsys):
    out = tmp_path / "out"
    assert _wiki_mrc(de_dump, tokenizer_dir, out) == 2
    err = _error(capsys)
    assert "'de'" in err and "--force-lang" in err and "--lang de" in err
    _no_blocking_leftover(out)
    assert _wiki_mrc(de_dump, tokenizer_dir, out, "--force-lang") == 0
    assert (out / "manifest.json").is_file()


# ------------------------------------------------------------------ 3. --out that cannot be written


def _commands(tmp_path: Path, tokenizer_dir: Path, out: Path) -> dict[str, list[str]]:
    text = tmp_path / "text.txt"
    text.write_text("one\ntwo\n", encoding="utf-8")
    common = ["--tokenizer", str(tokenizer_dir), "--out", str(out)]
    return {
        "wiki-mrc": ["wiki-mrc", "--input", str(EXTRACTED), "--lang", "en", *common],
        "corpus": ["corpus", "--input", str(text), "--lang", "en", *common],
        "parallel": ["parallel", "--src", str(text), "--tgt", str(text), "--src-lang", "en",
                     "--tgt-lang", "de", *common],
    }


@pytest.mark.parametrize("command", ["wiki-mrc", "corpus", "parallel"])
def test_out_under_a_regular_file_is_refused(command, tokenizer_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(_commands(tmp_path, tokenizer_dir, blocker / "sub")[command]) == 2
    err = _error(capsys)
    assert f"--out {blocker / 'sub'}" in err and "is a file" in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["wiki-mrc", "corpus", "parallel"])
def test_out_in_a_read_only_folder_is_refused(command, tokenizer_dir, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(_commands(tmp_path, tokenizer_dir, locked / "out")[command]) == 2
        err = _error(capsys)
        assert "--out" in err and "not writable" in err, err
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------ 4. a failed start blocks nothing


def test_a_failed_start_does_not_block_the_corrected_run(tokenizer_dir, tmp_path, capsys):
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("one\ntwo\nthree\n", encoding="utf-8")
    tgt.write_text("eins\nzwei\n", encoding="utf-8")  # found only after the folder is set up
    args = ["parallel", "--src", str(src), "--tgt", str(tgt), "--src-lang", "en",
            "--tgt-lang", "de", "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "line-aligned" in _error(capsys)
    tgt.write_text("eins\nzwei\ndrei\n", encoding="utf-8")
    assert main(args) == 0, capsys.readouterr().err  # no --resume needed
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_a_failed_build_keeps_committed_work(tmp_path):
    build = ShardedBuild(tmp_path / "a", "mrc", {"seed": 1}, resume=False)
    build.discard_unstarted()
    assert not build.work_dir.exists()
    build = ShardedBuild(tmp_path / "b", "mrc", {"seed": 1}, resume=False)
    write_shard(build.work_dir, 0, [], {})
    build.discard_unstarted()
    assert (build.work_dir / "shards" / "00000.json").is_file()  # worth resuming
    resumed = ShardedBuild(tmp_path / "b", "mrc", {"seed": 1}, resume=True)
    resumed.discard_unstarted()  # this run did not create it
    assert resumed.work_dir.exists()


# ------------------------------------------------------------------ 5. malformed JSON lines


def test_corpus_counts_malformed_json_apart_from_invalid_utf8(tokenizer_dir, tmp_path):
    with bz2.open(EXTRACTED, "rb") as f:
        rows = [next(f) for _ in range(4)]
    rows[1:1] = [b'{"id": "7", "title": "Half\n', b'{"id": "8", "text": "caf\xc3\x28"}\n']
    source = tmp_path / "wiki_00"
    source.write_bytes(b"".join(rows))
    manifest = build_corpus([source], "en", tokenizer_dir, tmp_path / "out", docs_per_shard=3)
    assert manifest["skipped"] == {"empty": 2, "invalid_utf8": 1, "malformed_json": 1}
    assert manifest["documents"] == 4


# ------------------------------------------------------------------ 6. prediction types

NER_GOLD = "John\tB-PER\nlives\tO\n\nApple\tB-ORG\n"
ABSA_GOLD = "The\tO\tNIL\nfish\tT-POS\tF\n"


@pytest.mark.parametrize("task, gold, value", [
    ("ner", NER_GOLD, None), ("ner", NER_GOLD, 3), ("ner", NER_GOLD, "PER"),
    ("ner", NER_GOLD, [[0, 4, None]]), ("absa", ABSA_GOLD, None), ("absa", ABSA_GOLD, {"a": 1}),
    ("pair", "a\tb\t1\n", None), ("pair", "a\tb\t1\n", [1]), ("pair", "a\tb\t1\n", 1.5),
])
def test_wrongly_typed_predictions_are_one_error_line(task, gold, value, tmp_path, capsys):
    gold_path = tmp_path / "gold.txt"
    gold_path.write_text(gold, encoding="utf-8")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"0": value}), encoding="utf-8")
    assert evaluate_main(["--task", task, "--gold", str(gold_path), "--pred", str(pred)]) == 2
    err = _error(capsys)
    assert str(pred) in err and "prediction '0'" in err, err


@pytest.mark.parametrize("value", [None, 7, ["Lyon"]])
def test_wrongly_typed_eqa_predictions_name_the_file(value, tmp_path, capsys):
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps(SQUAD), encoding="utf-8")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"q1": value}), encoding="utf-8")
    assert evaluate_main(["--task", "eqa", "--gold", str(gold), "--pred", str(pred)]) == 2
    err = _error(capsys)
    assert str(pred) in err and "prediction 'q1'" in err and "string" in err, err


# ------------------------------------------------------------------ 7. --max-article-chars


def test_max_article_chars_skips_and_counts_long_pages(tokenizer_dir, tmp_path, capsys):
    dump = tmp_path / "wiki.json"
    lines = [{"id": str(i), "revid": str(i), "url": "", "title": title,
              "text": f"{title} is an article nobody links to. " * n}
             for i, (title, n) in enumerate([("Short", 10), ("Long", 40)])]
    dump.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    manifest = build_wiki_mrc(dump, tokenizer_dir, tmp_path / "a",
                              MRCParams(lang="en", max_article_chars=1000), progress=False)
    assert manifest["skipped"].get("huge_article") == 1
    assert manifest["reading"]["articles"] == 1
    assert manifest["params"]["max_article_chars"] == 1000
    assert _wiki_mrc(dump, tokenizer_dir, tmp_path / "b", "--max-article-chars", "1000") == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["skipped"] == \
        manifest["skipped"]
    assert _wiki_mrc(dump, tokenizer_dir, tmp_path / "c", "--max-article-chars", "0") == 2
    assert "--max-article-chars must be >= 1" in _error(capsys)
