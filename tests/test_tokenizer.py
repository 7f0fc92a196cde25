"""data_prep.tokenizer: XLM-R-compatible SentencePiece training, loading and fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from data_prep.__main__ import main
from data_prep.tokenizer import (SPM_FILE, _strip_wikitext, load_tokenizer, tokenizer_info,
                                 train_tokenizer)
from paths import SHARED_DATA

DATA = SHARED_DATA
PARALLEL = DATA / "parallel"
SCRIPTS = {"eng": "tatoeba.rus-eng.eng", "rus": "tatoeba.rus-eng.rus",
           "cmn": "tatoeba.cmn-eng.cmn", "tha": "tatoeba.tha-eng.tha",
           "ara": "tatoeba.ara-eng.ara", "hin": "tatoeba.hin-eng.hin"}

pytestmark = pytest.mark.skipif(not PARALLEL.is_dir(), reason=f"test data missing: {PARALLEL}")


def lines(name: str, n: int = 60) -> list[str]:
    with open(PARALLEL / name, encoding="utf-8") as f:
        return [line.strip() for line, _ in zip(f, range(n)) if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "multi"
    return train_tokenizer(sorted(PARALLEL.glob("tatoeba.*")), 2000, out, seed=0)


def test_folder_loads_with_transformers_and_has_xlmr_ids(trained):
    from transformers import AutoTokenizer, XLMRobertaTokenizer

    assert {p.name for p in trained.iterdir()} >= {SPM_FILE, "tokenizer.json",
                                                  "tokenizer_config.json"}
    for tok in (XLMRobertaTokenizer.from_pretrained(trained),
                AutoTokenizer.from_pretrained(trained), load_tokenizer(trained)):
        ids = {t: tok.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>")}
        assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        assert tok.mask_token_id == len(tok) - 1
        assert len(tok) == 2002  # 2000 pieces + <pad> + <mask>
        assert tok("Hello").input_ids[0] == 0 and tok("Hello").input_ids[-1] == 2
    info = tokenizer_info(load_tokenizer(trained))
    assert (info["cls_id"], info["pad_id"], info["sep_id"], info["unk_id"], info["mask_id"],
            info["vocab_size"]) == (0, 1, 2, 3, 2001, 2002)


def test_ids_are_sentencepiece_ids_plus_one(trained):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(trained / SPM_FILE))
    tok = load_tokenizer(trained)
    for name in SCRIPTS.values():
        for text in lines(name, 30):
            expected = [3 if i == sp.unk_id() else i + 1 for i in sp.encode(text)]
            assert tok(text, add_special_tokens=False).input_ids == expected, text


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_round_trip_of_each_script(trained, script):
    tok = load_tokenizer(trained)
    normalize = tok.backend_tokenizer.normalizer.normalize_str  # NFKC, like XLM-R
    texts = lines(SCRIPTS[script])
    with_unk = 0
    for text in texts:
        ids = tok(text).input_ids
        if tok.unk_token_id in ids:
            with_unk += 1
            continue
        assert tok.decode(ids, skip_special_tokens=True) == normalize(text)
    assert with_unk <= len(texts) // 5  # rare CJK characters fall outside the coverage


def test_fingerprint_is_stable_and_training_deterministic(trained, tmp_path):
    first = tokenizer_info(load_tokenizer(trained))["fingerprint"]
    assert tokenizer_info(load_tokenizer(trained))["fingerprint"] == first
    eng = [PARALLEL / "tatoeba.deu-eng.eng"]
    a = train_tokenizer(eng, 400, tmp_path / "a", seed=1, input_sentence_size=600)
    b = train_tokenizer(eng, 400, tmp_path / "b", seed=1, input_sentence_size=600)
    c = train_tokenizer(eng, 400, tmp_path / "c", seed=2, input_sentence_size=600)
    for name in (SPM_FILE, "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / SPM_FILE).read_bytes() != (c / SPM_FILE).read_bytes()  # another line sample
    prints = {tokenizer_info(load_tokenizer(p))["fingerprint"] for p in (a, c)}
    assert len(prints) == 2 and first not in prints


@pytest.mark.parametrize("keep", [SPM_FILE, "tokenizer.json"])
def test_official_style_folders_load_with_the_same_fingerprint(trained, tmp_path, keep):
    (tmp_path / keep).write_bytes((trained / keep).read_bytes())  # xlm-roberta-* ship either
    ours, theirs = (tokenizer_info(load_tokenizer(p)) for p in (trained, tmp_path))
    assert {**ours, "name_or_path": ""} == {**theirs, "name_or_path": ""}


def test_train_on_dump_with_the_regex_fallback(tmp_path, monkeypatch):
    dump = DATA / "wiki" / "enwiki-sample.xml.bz2"
    monkeypatch.setitem(sys.modules, "data_prep.wiki", None)  # import fails -> fallback
    out = train_tokenizer([dump], 1500, tmp_path / "wiki", input_sentence_size=1500)
    tok = load_tokenizer(out)
    pieces = tok.tokenize("Anarchism is a political philosophy")
    assert "".join(pieces).replace("▁", " ").strip() == "Anarchism is a political philosophy"
    assert len(pieces) <= 8  # frequent words of the dump are whole pieces
    assert not any("[[" in p or "{{" in p for p in tok.get_vocab())


def test_train_on_synthetic_dump_through_read_wiki(tmp_path):
    pytest.importorskip("data_prep.wiki")
    from data_prep.synth import write_synthetic_wiki

    dumps = write_synthetic_wiki(tmp_path / "dumps", ["ru", "zh"], articles_per_lang=40)
    tok = load_tokenizer(train_tokenizer(dumps, 800, tmp_path / "tok", lang="ru"))
    assert not any("[[" in p or "'''" in p for p in tok.get_vocab())
    assert tok.decode(tok("Меркурий").input_ids, skip_special_tokens=True) == "Меркурий"


def test_strip_wikitext():
    text = ("'''Anarchy''' is a [[political philosophy|philosophy]] of [[vein]]s"
            "{{cite|x={{y}}}}<ref name=a>ref</ref>.\n[[File:A.jpg|thumb|caption]]"
            "\n== History ==\n* item [http://example.org site] &amp; more<!-- c -->")
    assert _strip_wikitext(text) == "Anarchy is a philosophy of veins.\n\nHistory\nitem site & more"


def test_errors_are_clear(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="input not found"):
        train_tokenizer([tmp_path / "nope.txt"], 100, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no sentencepiece.bpe.model"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "missing-tokenizer")
    with pytest.raises(ValueError, match="raise --vocab-size"):
        train_tokenizer([PARALLEL / "tatoeba.cmn-eng.cmn"], 100, tmp_path / "small")
    rc = main(["train-tokenizer", "--input", str(tmp_path / "nope.txt"), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: input not found")
