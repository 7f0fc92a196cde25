"""Shared fixtures: small random MRC language folders written through the real data_prep
writer (ShardedBuild + write_shard + merge), and a tiny run config pointing at them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 64
TOKENIZER = {
    "name_or_path": "random-test-tokenizer",
    "fingerprint": "test-fingerprint-1",
    "vocab_size": VOCAB_SIZE,
    "pad_id": 1,
    "cls_id": 0,
    "sep_id": 2,
    "unk_id": 3,
    "mask_id": VOCAB_SIZE - 1,
}
LANG_SIZES = {"en": 300, "de": 100}


def random_examples(rng: np.random.Generator, n: int, max_query: int = 10,
                    max_context: int = 30) -> list:
    """n random `<s> q </s></s> c </s>` examples; about half answerable (1-3 spans). Like
    data_prep's output, runs of 1-4 consecutive examples share one query (one entity)."""
    from data_prep.format import MRCExample

    examples = []
    shared = 0
    for _ in range(n):
        if shared == 0:
            q = int(rng.integers(1, max_query + 1))
            query = rng.integers(4, VOCAB_SIZE - 1, size=q)
            shared = int(rng.integers(1, 5))
        shared -= 1
        c = int(rng.integers(3, max_context + 1))
        context = rng.integers(4, VOCAB_SIZE - 1, size=c)
        ids = np.concatenate([[0], query, [2, 2], context, [2]]).astype(np.int32)
        start = q + 3
        end = start + c  # index of the final </s>
        spans = []
        if rng.random() < 0.5:
            for _ in range(int(rng.integers(1, 4))):
                s = int(rng.integers(start, end))
                e = int(rng.integers(s, min(end, s + 4)))
                if (s, e) not in spans:
                    spans.append((s, e))
        examples.append(MRCExample(ids, start, end, np.array(spans, dtype=np.int32).reshape(-1, 2)))
    return examples


def query_of(example) -> tuple:
    return tuple(example.input_ids[1:example.context_start - 2].tolist())


def query_groups(examples: list) -> list[int]:
    """Sizes of the runs of consecutive examples with the same query (data_prep's entities)."""
    sizes: list[int] = []
    for k, ex in enumerate(examples):
        if k and query_of(ex) == query_of(examples[k - 1]):
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def write_mrc_folder(out: Path, lang: str, examples: list, tokenizer: dict | None = None,
                     params: dict | None = None) -> Path:
    """Write `examples` as a finished data_prep MRC folder (two shards cut at an entity
    boundary, then merge); entity groups = runs of consecutive examples with one query."""
    from data_prep.shards import ShardedBuild, write_shard

    build = ShardedBuild(out, "mrc", params or {"max_seq_len": 64, "max_query_tokens": 16, "seed": 0}, resume=False)
    sizes = query_groups(examples)
    cut = int(np.cumsum(sizes)[len(sizes) // 2 - 1]) if len(sizes) > 1 else len(examples)
    for unit, part in enumerate([examples[:cut], examples[cut:]]):
        answerable = sum(ex.answerable for ex in part)
        write_shard(build.work_dir, unit, [ex.to_arrays() for ex in part],
                    {"counts": {"answerable": answerable, "unanswerable": len(part) - answerable}},
                    groups=query_groups(part))
    build.merge(2, {"lang": lang, "tokenizer": dict(tokenizer or TOKENIZER)})
    return out


@pytest.fixture(scope="session")
def tiny_mrc_data(tmp_path_factory) -> Path:
    """Root folder with `en/` (300 examples) and `de/` (100) random MRC folders."""
    root = tmp_path_factory.mktemp("mrc")
    for i, (lang, n) in enumerate(LANG_SIZES.items()):
        write_mrc_folder(root / lang, lang, random_examples(np.random.default_rng(i), n))
    return root


@pytest.fixture
def make_mrc_folder():
    """The folder writer, for tests that need odd data (other tokenizer, long sequences)."""
    return write_mrc_folder


@pytest.fixture
def tiny_config(tiny_mrc_data, tmp_path):
    """`configs/tiny_mpmr.yaml` on the fixture data, run_dir in tmp, no loader workers."""
    from pretrain.config import load_config

    return load_config(PROJECT_ROOT / "configs" / "tiny_mpmr.yaml", [
        f"data.paths=[{tiny_mrc_data}]", f"run_dir={tmp_path / 'run'}", "data.num_workers=0",
    ])


@pytest.fixture(scope="session")
def tiny_veco_data(tmp_path_factory) -> Path:
    """VECO data built by the real data_prep commands from the shared Tatoeba samples: ROOT with
    `tokenizer/`, `corpus/{de,en}` (documents of 6 consecutive sentences, segments of at most
    30 ids cut at sentence ends: 2-3 adjacent segments per document) and `parallel/{de-en,
    fr-en}` (the first 400 pairs of each)."""
    from data_prep.corpus import build_corpus, build_parallel
    from data_prep.tokenizer import train_tokenizer
    from paths import SHARED_DATA

    parallel = SHARED_DATA / "parallel"
    root = tmp_path_factory.mktemp("veco")
    files = [parallel / f"tatoeba.{p}-eng.{s}" for p in ("deu", "fra") for s in (p, "eng")]
    tokenizer = train_tokenizer(files, 1000, root / "tokenizer", num_threads=1)
    for lang, name in (("de", "tatoeba.deu-eng.deu"), ("en", "tatoeba.fra-eng.eng")):
        lines = (parallel / name).read_text(encoding="utf-8").splitlines()[:240]
        text = root / f"{lang}.txt"
        text.write_text("\n\n".join("\n".join(lines[i:i + 6]) for i in range(0, len(lines), 6))
                        + "\n", encoding="utf-8")
        build_corpus([text], lang, tokenizer, root / "corpus" / lang, max_seq_len=32,
                     sentences=True)
    for src, lang in (("deu", "de"), ("fra", "fr")):
        lines = {}
        for side in (src, "eng"):
            path = root / f"{lang}-en.{side}"
            path.write_text("\n".join((parallel / f"tatoeba.{src}-eng.{side}").read_text(
                encoding="utf-8").splitlines()[:400]) + "\n", encoding="utf-8")
            lines[side] = path
        build_parallel(lines[src], lines["eng"], lang, "en", tokenizer,
                       root / "parallel" / f"{lang}-en", max_len=30)
    return root


@pytest.fixture(scope="session")
def tiny_glm_data(tmp_path_factory) -> Path:
    """mGLM data built by the real data_prep commands from the shared Tatoeba samples: ROOT with
    `tokenizer/` (`train-tokenizer --layout glm`, 600 pieces) and `corpus/{de,en}` (documents of
    6 consecutive sentences: 40 per language)."""
    from data_prep.corpus import build_corpus
    from data_prep.tokenizer import train_tokenizer
    from paths import SHARED_DATA

    parallel = SHARED_DATA / "parallel"
    root = tmp_path_factory.mktemp("glm")
    files = [parallel / f"tatoeba.deu-eng.{side}" for side in ("deu", "eng")]
    tokenizer = train_tokenizer(files, 600, root / "tokenizer", num_threads=1, layout="glm")
    for lang, side in (("de", "deu"), ("en", "eng")):
        lines = (parallel / f"tatoeba.deu-eng.{side}").read_text(encoding="utf-8").splitlines()
        text = root / f"{lang}.txt"
        text.write_text("\n\n".join("\n".join(lines[i:i + 6]) for i in range(0, 240, 6))
                        + "\n", encoding="utf-8")
        build_corpus([text], lang, tokenizer, root / "corpus" / lang, max_seq_len=512)
    return root
