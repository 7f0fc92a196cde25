"""Output bytes of the data builds, pinned by hash (issue 12 item 1: the scale rewrite of the
mPMR index must not change a single byte).

The hashes were taken from the builds of commit ba54f83 (before the index moved to disk), on
the real English excerpt, real WikiExtractor JSON, synthetic dumps in seven scripts, and a
corpus and a parallel build. A change to any of them is a change of the method's output: it
needs a reason in the commit message and new hashes here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from paths import SHARED_DATA

DUMP = SHARED_DATA / "wiki" / "enwiki-sample.xml.bz2"
EXTRACTED = SHARED_DATA / "wiki" / "enwiki-extracted-links"
PARALLEL = SHARED_DATA / "parallel"
SYNTH_LANGS = ["en", "de", "ru", "zh", "th", "ar", "hi"]


def digest(folder: Path) -> dict:
    """sha256 of every data file of a build, and of its counters (paths left out)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    out = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
           for p in sorted(folder.iterdir()) if p.suffix in (".bin", ".idx", ".npy")}
    counters = {k: manifest.get(k) for k in ("counts", "reading", "skipped")}
    out["counters"] = hashlib.sha256(json.dumps(counters, sort_keys=True).encode()).hexdigest()[:16]
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, dict]:
    from data_prep.corpus import build_corpus, build_parallel
    from data_prep.mrc import MRCParams, build_wiki_mrc
    from data_prep.synth import write_synthetic_wiki
    from data_prep.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("pinned")
    en_tok = train_tokenizer([DUMP], vocab_size=4000, out_dir=root / "tok-en", lang="en")
    dumps = write_synthetic_wiki(root / "synth", SYNTH_LANGS, articles_per_lang=60)
    multi_tok = train_tokenizer(dumps, vocab_size=3000, out_dir=root / "tok-multi", lang="en")
    out = {}
    build_wiki_mrc(DUMP, en_tok, root / "excerpt", MRCParams(lang="en", min_mentions=2),
                   progress=False)
    out["excerpt"] = digest(root / "excerpt")
    build_wiki_mrc(EXTRACTED, en_tok, root / "extracted", MRCParams(lang="en", min_mentions=2),
                   progress=False)
    out["extracted"] = digest(root / "extracted")
    for lang, dump in zip(SYNTH_LANGS, dumps):
        build_wiki_mrc(dump, multi_tok, root / f"synth-{lang}",
                       MRCParams(lang=lang, entities_per_unit=4), progress=False)
        out[f"synth-{lang}"] = digest(root / f"synth-{lang}")
    (big,) = write_synthetic_wiki(root / "synth-big", ["en"], articles_per_lang=400,
                                  generated_entities=True, described_mentions=0.3)
    build_wiki_mrc(big, multi_tok, root / "synth-big-en", MRCParams(lang="en", min_mentions=3),
                   progress=False)
    out["synth-big-en"] = digest(root / "synth-big-en")
    build_corpus([next(EXTRACTED.rglob("wiki_00*"))], "en", en_tok, root / "corpus",
                 max_seq_len=128, docs_per_shard=7)
    out["corpus"] = digest(root / "corpus")
    build_parallel(PARALLEL / "tatoeba.deu-eng.deu", PARALLEL / "tatoeba.deu-eng.eng", "de", "en",
                   en_tok, root / "parallel", max_len=64, pairs_per_shard=50)
    out["parallel"] = digest(root / "parallel")
    return out


PINNED: dict[str, dict] = {
    "excerpt": {"mrc.bin": "11120a819e4984ad", "mrc.groups.npy": "11e6bda355e948a7", "mrc.idx": "1d19e7a3c6fc5f49", "counters": "f1a60424482a8686"},
    "extracted": {"mrc.bin": "6b4ce0f38f1a977f", "mrc.groups.npy": "11e6bda355e948a7", "mrc.idx": "36fcc88c6a513dcb", "counters": "ae29c94a901cd834"},
    "synth-en": {"mrc.bin": "51b726bfa7a06f2f", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "ec9bf86a09a84cb4", "counters": "5252df67f9000624"},
    "synth-de": {"mrc.bin": "8b0adf581d8c9658", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "514666e2af557739", "counters": "322dce546832ee0d"},
    "synth-ru": {"mrc.bin": "51f5a5facbc1cb6b", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "9dda2fd42c62e578", "counters": "2a61215ee72b1458"},
    "synth-zh": {"mrc.bin": "e1f8b68861ae62f6", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "5c728d21a94f8b4c", "counters": "2d2c2a60078cc4f8"},
    "synth-th": {"mrc.bin": "66f9fa5447442484", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "15d3408a42fd9b1c", "counters": "5ac66f0123ce01ca"},
    "synth-ar": {"mrc.bin": "7f75b6342023f3cc", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "81799edfa1c32bfc", "counters": "d64fa0095f99cba1"},
    "synth-hi": {"mrc.bin": "120b5d0988a7e77c", "mrc.groups.npy": "d9b2c1bb78d99de3", "mrc.idx": "2973061fd63b61a5", "counters": "4de2096315448f8d"},
    "synth-big-en": {"mrc.bin": "fb7364c6ce5b353c", "mrc.groups.npy": "882a539ee680b434", "mrc.idx": "004836d99a275e76", "counters": "2f107dffd41cb1ca"},
    "corpus": {"corpus.bin": "259c3bdacd7eccdc", "corpus.idx": "18030968491b1517", "counters": "6bdcd4381932a5c8"},
    "parallel": {"parallel.bin": "ce372c4f7a059016", "parallel.idx": "6eac63d768852e12", "counters": "db6027501e5e1002"},
}


@pytest.mark.parametrize("name", ["excerpt", "extracted", *(f"synth-{l}" for l in SYNTH_LANGS),
                                  "synth-big-en", "corpus", "parallel"])
def test_build_output_is_pinned(builds, name):
    assert builds[name] == PINNED[name]
