"""VECO data pipeline: adjacent-segment pairs, held-out split, alternating streams, exact resume
across world sizes, deterministic fairseq-style masking, TLM layout, and every data check."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep.corpus import build_corpus, build_parallel
from data_prep.format import CorpusDataset, ParallelDataset
from data_prep.tokenizer import train_tokenizer
from pretrain.config import ConfigError, load_config
from pretrain.veco_data import (
    IGNORE, _StepBatchIndices, adjacent_pairs, check_veco_data, consumed_before, eval_batches,
    eval_samples, mask_tokens, special_ids, step_kind, stream_sampler, train_batches,
    veco_data_info,
)

from conftest import random_examples, write_mrc_folder
from paths import SHARED_DATA

PARALLEL = SHARED_DATA / "parallel"
pytestmark = pytest.mark.skipif(not PARALLEL.is_dir(), reason=f"test data missing: {PARALLEL}")

G, MICRO, RATIO = 8, 2, 2  # global batch, micro-batch, bilingual ratio of the tiny runs


def tatoeba(name: str, n: int) -> list[str]:
    return (PARALLEL / f"tatoeba.{name}").read_text(encoding="utf-8").splitlines()[:n]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Tokenizer, corpus folders de / fr (documents of 1-8 tatoeba lines, segments cut at
    sentence ends, max_seq_len 48) and parallel folders de-en / fr-en (max 30 ids a side)."""
    root = tmp_path_factory.mktemp("veco")
    tokenizer = train_tokenizer(sorted(PARALLEL.glob("tatoeba.*")), 2000, root / "tok")
    rng = np.random.default_rng(0)
    for lang, name in (("de", "deu-eng.deu"), ("fr", "fra-eng.fra")):
        lines, docs, i = tatoeba(name, 600), [], 0
        while i < len(lines):
            n = int(rng.integers(1, 9))
            docs.append("\n".join(lines[i:i + n]))
            i += n
        (root / f"{lang}.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        build_corpus([root / f"{lang}.txt"], lang, tokenizer, root / "corpus" / lang,
                     max_seq_len=48, docs_per_shard=20, sentences=True)
        src, tgt = root / f"{lang}-en.{lang}", root / f"{lang}-en.en"
        src.write_text("\n".join(tatoeba(name, 400)) + "\n", encoding="utf-8")
        tgt.write_text("\n".join(tatoeba(f"{name[:8]}eng", 400)) + "\n", encoding="utf-8")
        build_parallel(src, tgt, lang, "en", tokenizer, root / "parallel" / f"{lang}-en",
                       max_len=30, pairs_per_shard=150)
    return {"root": root, "tokenizer": tokenizer, "corpus": root / "corpus",
            "parallel": root / "parallel"}


def make_cfg(data: dict, *overrides: str, paths=None, parallel_paths=None):
    paths = [data["corpus"]] if paths is None else paths
    parallel_paths = [data["parallel"]] if parallel_paths is None else parallel_paths
    return load_config(None, [
        "objective=veco", f"data.paths=[{','.join(map(str, paths))}]",
        f"data.parallel_paths=[{','.join(map(str, parallel_paths))}]", "data.max_seq_len=48",
        "veco.bilingual_max_len=32", f"train.global_batch_size={G}",
        f"train.micro_batch_size={MICRO}", f"veco.bilingual_batch_ratio={RATIO}",
        "data.num_workers=0", "veco.eval_documents=3", "veco.eval_pairs=10", *overrides])


@pytest.fixture(scope="module")
def cfg(data):
    return make_cfg(data)


@pytest.fixture(scope="module")
def info(cfg):
    check_veco_data(cfg)
    return veco_data_info(cfg)


def take(cfg, info, rank, world, consumed, n):
    batches = train_batches(cfg, rank, world, consumed, info)
    out = [next(batches) for _ in range(n)]
    batches.close()
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def restored(batch: dict, name: str) -> torch.Tensor:
    """The unmasked ids: labels where a position was chosen, the input elsewhere."""
    labels = batch[f"{name}_labels"]
    return torch.where(labels != IGNORE, labels, batch[f"{name}_ids"])


def unpadded(batch: dict, name: str, row: int) -> list[int]:
    return restored(batch, name)[row][batch[f"{name}_mask"][row].bool()].tolist()


# ---------------------------------------------------------------------- pairs and split

def test_adjacent_pairs_of_document_indices():
    # documents of 3, 1, 0 and 3 segments: pairs start at 0, 1 (doc 0) and 4, 5 (doc 3)
    starts, offsets = adjacent_pairs(np.array([0, 3, 4, 4, 7]))
    assert starts.tolist() == [0, 1, 4, 5] and offsets.tolist() == [0, 2, 4]
    starts, offsets = adjacent_pairs(np.array([0]))
    assert starts.tolist() == [] and offsets.tolist() == [0]


def test_pairs_are_adjacent_segments_of_one_document(data, cfg, info):
    for lang_id, folder in enumerate(info.corpus_folders):
        ds = CorpusDataset(folder)
        doc_of = np.repeat(np.arange(len(ds)), np.diff(ds.indexed.document_indices))
        pairs = info.mono_pairs[lang_id]
        assert len(pairs) == ds.manifest["adjacent_pairs"] > 100
        assert (doc_of[pairs] == doc_of[pairs + 1]).all()
        assert sorted(np.concatenate([info.mono_train_ids[lang_id],
                                      info.mono_eval_ids[lang_id]]).tolist()) == pairs.tolist()
    # the batches hold <s> segment_j </s> and <s> segment_j+1 </s> of one document
    indices = iter(_StepBatchIndices(cfg, info, 0, 1, 1))
    samples = [next(indices) for _ in range(4)]  # step 1: mono
    batch = take(cfg, info, 0, 1, 0, 1)[0]
    tok = info.tokenizer
    for row, (kind, lang, j, _, _) in enumerate(samples[0]):
        ds = CorpusDataset(info.corpus_folders[lang])
        doc = int(np.searchsorted(ds.indexed.document_indices, j, side="right") - 1)
        k = j - int(ds.indexed.document_indices[doc])
        segments = ds[doc]
        assert kind == 0 and k + 1 < len(segments)
        assert unpadded(batch, "x", row) == [tok["cls_id"], *segments[k].tolist(), tok["sep_id"]]
        assert unpadded(batch, "y", row) == [tok["cls_id"], *segments[k + 1].tolist(),
                                             tok["sep_id"]]
        assert batch["lang_id"][row] == lang


def test_held_out_split_disjoint_whole_documents_and_deterministic(data, cfg, info):
    for lang_id, folder in enumerate(info.corpus_folders):
        ds = CorpusDataset(folder)
        doc_of = np.repeat(np.arange(len(ds)), np.diff(ds.indexed.document_indices))
        train, held = info.mono_train_ids[lang_id], info.mono_eval_ids[lang_id]
        assert not set(train.tolist()) & set(held.tolist())
        held_docs = set(doc_of[held].tolist())
        assert len(held_docs) == cfg.veco.eval_documents
        assert not held_docs & set(doc_of[train].tolist())  # whole documents
    for pair_id, folder in enumerate(info.parallel_folders):
        train, held = info.bilingual_train_ids[pair_id], info.bilingual_eval_ids[pair_id]
        assert len(held) == cfg.veco.eval_pairs and not set(train.tolist()) & set(held.tolist())
        assert len(train) + len(held) == len(ParallelDataset(folder))
    again = veco_data_info(cfg)
    other = veco_data_info(make_cfg(data, "data.seed=99"))
    for name in ("mono_eval_ids", "bilingual_eval_ids"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(info, name), getattr(again, name)))
        assert not all(np.array_equal(a, b) for a, b in zip(getattr(info, name),
                                                             getattr(other, name)))
    assert info.manifest_hash == again.manifest_hash
    assert set(info.data_hashes) == {"de", "fr", "de-en", "fr-en"}
    assert info.tokenizer["mask_id"] == info.tokenizer["vocab_size"] - 1


# ---------------------------------------------------------------------- schedule and streams

def test_step_kind_and_consumed_counts(data, cfg):
    assert [step_kind(s, cfg) for s in range(1, 6)] == ["mono", "bilingual"] * 2 + ["mono"]
    assert [consumed_before(s, cfg) for s in (1, 2, 3, 6)] == [
        (0, 0), (G, 0), (G, G * RATIO), (3 * G, 2 * G * RATIO)]
    mono = make_cfg(data, "veco.schedule=mono")
    bilingual = make_cfg(data, "veco.schedule=bilingual")
    assert {step_kind(s, mono) for s in range(1, 5)} == {"mono"}
    assert consumed_before(4, mono) == (3 * G, 0)
    assert consumed_before(4, bilingual) == (0, 3 * G * RATIO)
    with pytest.raises(ValueError, match="count from 1"):
        step_kind(0, cfg)


@pytest.mark.parametrize("schedule", ["alternate", "mono", "bilingual"])
def test_streams_are_consumed_in_order_without_gaps(data, info, schedule):
    cfg = make_cfg(data, f"veco.schedule={schedule}")
    indices = iter(_StepBatchIndices(cfg, info, 0, 1, 1))
    accumulation = G // MICRO
    drawn: dict[int, list] = {0: [], 1: []}
    for step in range(1, 7):
        kind = ("mono", "bilingual").index(step_kind(step, cfg))
        for _ in range(accumulation):
            micro = next(indices)
            assert {s[0] for s in micro} == {kind} and len(micro) == MICRO * (RATIO if kind else 1)
            drawn[kind].extend(micro)
        assert len(drawn[kind]) == consumed_before(step + 1, cfg)[kind]
    for kind, samples in drawn.items():
        assert [s[4] for s in samples] == list(range(len(samples)))  # sample numbers
        if samples:  # the stream's blended order, mapped to training ids
            sampler, ids = stream_sampler(cfg, info, kind), \
                (info.mono_train_ids, info.bilingual_train_ids)[kind]
            expected = [(lang, int(ids[lang][k])) for lang, k in sampler.take(0, len(samples))]
            assert [(s[1], s[2]) for s in samples] == expected
    assert bool(drawn[0]) == (schedule != "bilingual") and bool(drawn[1]) == (schedule != "mono")


def test_batches_alternate_kind_and_shape(cfg, info):
    batches = take(cfg, info, 0, 1, 0, 4 * G // MICRO)
    kinds = [int(b["kind"][0]) for b in batches]
    assert kinds == [0] * 4 + [1] * 4 + [0] * 4 + [1] * 4
    for batch in batches:
        kind = int(batch["kind"][0])
        size = MICRO * (RATIO if kind else 1)
        assert (batch["kind"] == kind).all() and batch["lang_id"].shape == (size,)
        assert ("tlm_ids" in batch) == (kind == 1)
        for name in ("x", "y"):
            assert batch[f"{name}_ids"].dtype == torch.long
            assert batch[f"{name}_ids"].shape == batch[f"{name}_labels"].shape
            assert batch[f"{name}_ids"].shape[1] == int(batch[f"{name}_mask"].sum(1).max())
            assert batch[f"{name}_ids"].shape[1] <= (48 if kind == 0 else 32)


# ---------------------------------------------------------------------- resume and ranks

@pytest.mark.parametrize("world", [1, 2])
def test_resume_gives_the_straight_run(cfg, info, world):
    accumulation = G // (MICRO * world)
    for rank in range(world):
        straight = take(cfg, info, rank, world, 0, 6 * accumulation)
        for steps_done in (1, 4):
            resumed = take(cfg, info, rank, world, steps_done * G, 2 * accumulation)
            expected = straight[steps_done * accumulation:(steps_done + 2) * accumulation]
            assert all(same(a, b) for a, b in zip(resumed, expected, strict=True))
    with pytest.raises(ValueError, match="whole number of steps"):
        train_batches(cfg, 0, world, G + 1, info)


def test_union_over_ranks_is_the_world_size_1_step(cfg, info):
    one = take(cfg, info, 0, 1, 0, 4 * 4)  # 4 steps, 4 micro-batches each
    ranks = [take(cfg, info, r, 2, 0, 4 * 2) for r in range(2)]  # 2 micro-batches each
    for step in range(4):
        for a in range(2):
            for r in range(2):
                assert same(one[4 * step + 2 * a + r], ranks[r][2 * step + a])


def test_loader_workers_do_not_change_batches(data, cfg, info):
    workers = make_cfg(data, "data.num_workers=2")
    assert all(same(a, b) for a, b in zip(take(cfg, info, 0, 1, 0, 8),
                                          take(workers, info, 0, 1, 0, 8), strict=True))


def rows_of(batches: list[dict]) -> list[dict]:
    """Every sample of a list of micro-batches as its own unpadded tensors."""
    out = []
    for batch in batches:
        for row in range(batch["kind"].shape[0]):
            sample = {"kind": batch["kind"][row], "lang_id": batch["lang_id"][row]}
            for name in ("x", "y", "tlm"):
                if f"{name}_ids" in batch:
                    keep = batch[f"{name}_mask"][row].bool()
                    sample[name] = batch[f"{name}_ids"][row][keep]
                    sample[f"{name}_labels"] = batch[f"{name}_labels"][row][keep]
            out.append(sample)
    return out


def test_samples_do_not_depend_on_the_micro_batch_size(data, cfg, info):
    """Masks come from (seed, stream, sample number, sequence), not from a row of a batch: a
    run with micro-batches of 1 sees exactly the same samples, masks included."""
    ones = make_cfg(data, "train.micro_batch_size=1")
    a = rows_of(take(cfg, info, 0, 1, 0, 4 * G // MICRO))
    b = rows_of(take(ones, info, 0, 1, 0, 4 * G))
    assert len(a) == len(b) == 2 * G * (1 + RATIO)
    assert all(same(x, y) for x, y in zip(a, b, strict=True))


def test_collator_rejects_too_long_sequences(data, info):
    short = make_cfg(data, "data.max_seq_len=40")  # the data has segments of 46 ids
    with pytest.raises(ValueError, match=r"> data.max_seq_len=40; rebuild the data"):
        for _ in take(short, info, 0, 1, 0, 200):
            pass


# ---------------------------------------------------------------------- masking

def test_mask_rates_split_and_specials_on_synthetic_sequences():
    tokenizer = {"vocab_size": 500, "cls_id": 0, "pad_id": 1, "sep_id": 2, "unk_id": 3,
                 "mask_id": 499}
    specials = special_ids(tokenizer)
    replacements = np.setdiff1d(np.arange(500), specials)
    data_rng = np.random.default_rng(0)
    chosen = kept = masked = swapped = candidates = 0
    for n in range(3000):
        ids = data_rng.integers(4, 499, size=int(data_rng.integers(5, 80)))
        ids[data_rng.random(len(ids)) < 0.1] = data_rng.choice(specials)  # specials inside
        rng = np.random.default_rng([7, 0, n, 0])
        inputs, labels = mask_tokens(ids, rng, 0.15, 0.1, 0.1, 499, specials, replacements)
        again = mask_tokens(ids, np.random.default_rng([7, 0, n, 0]), 0.15, 0.1, 0.1, 499,
                            specials, replacements)
        assert np.array_equal(inputs, again[0]) and np.array_equal(labels, again[1])
        special = np.isin(ids, specials)
        assert (labels[special] == IGNORE).all() and np.array_equal(inputs[special], ids[special])
        at = labels != IGNORE
        assert np.array_equal(labels[at], ids[at]) and np.array_equal(inputs[~at], ids[~at])
        assert abs(at.sum() - 0.15 * (~special).sum()) < 1  # int(p·n + U): never off by >= 1
        candidates += int((~special).sum())
        chosen += int(at.sum())
        masked += int((inputs[at] == 499).sum())
        kept += int((inputs[at] == ids[at]).sum())
        other = at & (inputs != ids) & (inputs != 499)
        swapped += int(other.sum())
        assert not np.isin(inputs[other], specials).any()
    assert chosen / candidates == pytest.approx(0.15, abs=0.003)
    assert masked / chosen == pytest.approx(0.8, abs=0.015)
    assert kept / chosen == pytest.approx(0.1, abs=0.01)  # (+ 1/496 of the random draws)
    assert swapped / chosen == pytest.approx(0.1, abs=0.01)


def test_mask_rates_in_batches_and_specials_never_masked(cfg, info):
    tok = info.tokenizer
    specials = torch.tensor(special_ids(tok))
    rate = {0: [0, 0], 1: [0, 0]}
    for batch in take(cfg, info, 0, 1, 0, 20 * G // MICRO):
        kind = int(batch["kind"][0])
        for name in ("x", "y"):
            original = restored(batch, name)
            special = torch.isin(original, specials)
            labels = batch[f"{name}_labels"]
            assert (labels[special] == IGNORE).all()
            assert (batch[f"{name}_ids"][special] == original[special]).all()
            assert (original[:, 0] == tok["cls_id"]).all()
            rate[kind][0] += int((labels != IGNORE).sum())
            rate[kind][1] += int((~special).sum())
    assert rate[0][0] / rate[0][1] == pytest.approx(cfg.veco.mono_mask_prob, abs=0.01)
    assert rate[1][0] / rate[1][1] == pytest.approx(cfg.veco.bilingual_mask_prob, abs=0.01)


def test_tlm_layout_and_its_own_mask(data, cfg, info):
    tok = info.tokenizer
    bilingual = [b for b in take(cfg, info, 0, 1, 0, 8) if int(b["kind"][0]) == 1]
    differs = 0
    for batch in bilingual:
        for row in range(batch["x_ids"].shape[0]):
            x, y = unpadded(batch, "x", row)[1:-1], unpadded(batch, "y", row)[1:-1]
            cls, sep = tok["cls_id"], tok["sep_id"]
            assert unpadded(batch, "tlm", row) == [cls, *x, sep, sep, *y, sep]
            ca_mlm = torch.cat([batch["x_labels"][row][batch["x_mask"][row].bool()][1:-1],
                                batch["y_labels"][row][batch["y_mask"][row].bool()][1:-1]])
            tlm = batch["tlm_labels"][row][batch["tlm_mask"][row].bool()]
            tlm = torch.cat([tlm[1:1 + len(x)], tlm[3 + len(x):-1]])
            differs += int(not torch.equal((ca_mlm != IGNORE), (tlm != IGNORE)))
    assert differs >= len(bilingual) * 2  # independent draws almost never coincide
    no_tlm = make_cfg(data, "veco.tlm=false")
    assert all("tlm_ids" not in b for b in take(no_tlm, info, 0, 1, 0, 8))


# ---------------------------------------------------------------------- evaluation

@pytest.mark.parametrize("world", [1, 3])
def test_eval_batches_deterministic_equal_per_rank_and_unmixed(cfg, info, world):
    per_rank = [list(eval_batches(cfg, r, world, info)) for r in range(world)]
    assert len({len(batches) for batches in per_rank}) == 1
    again = list(eval_batches(cfg, 0, world, info))
    assert all(same(a, b) for a, b in zip(per_rank[0], again, strict=True))
    held = [sum(len(ids) for ids in info.mono_eval_ids),
            sum(len(ids) for ids in info.bilingual_eval_ids)]
    seen = Counter()
    for batches in per_rank:
        kinds = [int(b["kind"][0]) for b in batches]
        assert kinds[:4] == [0, 1, 0, 1]  # both kinds early: a short evaluation sees both
        for batch in batches:
            assert len(set(batch["kind"].tolist())) == 1
            seen[int(batch["kind"][0])] += len(batch["kind"])
    for kind in (0, 1):
        assert seen[kind] == held[kind] - held[kind] % world
    samples = eval_samples(cfg, info, 1)
    train_mono = {(lang, int(j)) for lang, ids in enumerate(info.mono_train_ids) for j in ids}
    assert not {(s[1], s[2]) for s in samples[0]} & train_mono
    assert {s[3] for s in samples[0]} == {2} and {s[3] for s in samples[1]} == {3}


# ---------------------------------------------------------------------- checks

def edited_copy(src: Path, dst: Path, **changes) -> Path:
    """A copy of a built folder with manifest keys changed (`tokenizer__mask_id=None`)."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for key, value in changes.items():
        node, *path = key.split("__")
        target = manifest
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def odd(data, tmp_path_factory) -> dict:
    """Folders for the error cases."""
    root = tmp_path_factory.mktemp("odd")
    corpus, parallel = data["corpus"], data["parallel"]
    (root / "one.txt").write_text("\n\n".join(tatoeba("deu-eng.deu", 20)) + "\n", encoding="utf-8")
    build_corpus([root / "one.txt"], "de", data["tokenizer"], root / "single", max_seq_len=512)
    return {
        "mrc": write_mrc_folder(root / "mrc", "en", random_examples(np.random.default_rng(0), 20)),
        "single": root / "single",
        "other_tok": edited_copy(corpus / "fr", root / "es", lang="es",
                                 tokenizer__fingerprint="another"),
        "dup_lang": edited_copy(corpus / "fr", root / "fr2"),
        "dup_pair": edited_copy(parallel / "de-en", root / "en-de", lang="en-de",
                                src_lang="en", tgt_lang="de"),
        "no_mask": edited_copy(corpus / "de", root / "nomask", tokenizer__mask_id=None),
    }


def _cases(data, odd) -> dict[str, tuple[str, dict]]:
    """name → (message pattern, make_cfg arguments)."""
    c, p = data["corpus"], data["parallel"]
    return {
        "no_folders": ("VECO has no data", dict(paths=[], parallel_paths=[])),
        "mrc_as_corpus": (r"data.paths: .*mrc holds 'mrc' data", dict(paths=[odd["mrc"]])),
        "parallel_as_corpus": (r"data.paths: .*de-en holds 'parallel' data",
                               dict(paths=[p / "de-en"])),
        "corpus_as_parallel": (r"data.parallel_paths: .*fr holds 'corpus' data",
                               dict(parallel_paths=[c / "fr"])),
        "mixed_tokenizers": (r"es was tokenized with a different tokenizer",
                             dict(paths=[c / "de", odd["other_tok"]])),
        "duplicate_language": (r"fr2 \(fr\) and .*fr \(fr\) are the same language;",
                               dict(paths=[c, odd["dup_lang"]])),
        "duplicate_pair": (r"en-de \(en-de\) and .*de-en \(de-en\) are the same language pair",
                           dict(parallel_paths=[p, odd["dup_pair"]])),
        "corpus_too_long": (r"data.paths: .*\(de\) holds segments of up to \d+ tokens, \d+ with "
                            r"<s> and </s> > data.max_seq_len=40; .* --max-seq-len 40",
                            dict(overrides=["data.max_seq_len=40"])),
        "parallel_too_long": (r"data.parallel_paths: .*\(de-en\) holds sentences of up to \d+ "
                              r"tokens, .* veco.bilingual_max_len=20; .* --max-len 18",
                              dict(overrides=["veco.bilingual_max_len=20"])),
        "no_adjacent_pairs": (r"single \(de\) has no document with two segments",
                              dict(paths=[odd["single"]], overrides=["data.max_seq_len=512"])),
        "eval_documents": (r"\(de\) has \d+ documents with adjacent segments, not more than "
                           r"veco.eval_documents=1000",
                           dict(overrides=["veco.eval_documents=1000"])),
        "eval_pairs": (r"\(de-en\) has \d+ pairs, not more than veco.eval_pairs=5000",
                       dict(overrides=["veco.eval_pairs=5000"])),
        "alternate_without_parallel": (r"veco.schedule='alternate' needs bilingual batches",
                                       dict(parallel_paths=[])),
        "alternate_without_corpus": (r"veco.schedule='alternate' needs monolingual batches",
                                     dict(paths=[])),
        "bilingual_without_parallel": (r"veco.schedule='bilingual' needs bilingual batches",
                                       dict(parallel_paths=[],
                                            overrides=["veco.schedule=bilingual"])),
        "mono_without_corpus": (r"veco.schedule='mono' needs monolingual batches",
                                dict(paths=[], overrides=["veco.schedule=mono"])),
        "unknown_schedule": (r"veco.schedule must be one of",
                             dict(overrides=["veco.schedule=both"])),
        "mono_mask_prob": (r"veco.mono_mask_prob must be in \(0, 1\)",
                           dict(overrides=["veco.mono_mask_prob=0.0"])),
        "bilingual_mask_prob": (r"veco.bilingual_mask_prob must be in \(0, 1\)",
                                dict(overrides=["veco.bilingual_mask_prob=1.0"])),
        "random_token_prob": (r"veco.random_token_prob must be in \[0, 1\]",
                              dict(overrides=["veco.random_token_prob=-0.1"])),
        "shares_over_one": (r"leave_unmasked_prob \+ veco.random_token_prob = 1.2 > 1",
                            dict(overrides=["veco.leave_unmasked_prob=0.6",
                                            "veco.random_token_prob=0.6"])),
        "batch_ratio": (r"veco.bilingual_batch_ratio must be >= 1",
                        dict(overrides=["veco.bilingual_batch_ratio=0"])),
        "no_mask_token": (r"nomask: its tokenizer .* has no mask token",
                          dict(paths=[odd["no_mask"]], parallel_paths=[],
                               overrides=["veco.schedule=mono"])),
    }


CASES = ["no_folders", "mrc_as_corpus", "parallel_as_corpus", "corpus_as_parallel",
         "mixed_tokenizers", "duplicate_language", "duplicate_pair", "corpus_too_long",
         "parallel_too_long", "no_adjacent_pairs", "eval_documents", "eval_pairs",
         "alternate_without_parallel", "alternate_without_corpus", "bilingual_without_parallel",
         "mono_without_corpus", "unknown_schedule", "mono_mask_prob", "bilingual_mask_prob",
         "random_token_prob", "shares_over_one", "batch_ratio", "no_mask_token"]


@pytest.mark.parametrize("case", CASES)
def test_check_veco_data_errors(data, odd, case):
    pattern, spec = _cases(data, odd)[case]
    cfg = make_cfg(data, *spec.get("overrides", []), paths=spec.get("paths"),
                   parallel_paths=spec.get("parallel_paths"))
    with pytest.raises(ConfigError, match=pattern):
        check_veco_data(cfg)


def test_length_checks_are_exact(data, odd):
    assert sorted(CASES) == sorted(_cases(data, odd))
    segment = max(len(s) for lang in ("de", "fr") for doc in CorpusDataset(data["corpus"] / lang)
                  for s in doc)
    side = max(len(ids) for pair in ("de-en", "fr-en")
               for item in ParallelDataset(data["parallel"] / pair) for ids in item)
    assert segment == 46 and side <= 30  # the builds' limits
    check_veco_data(make_cfg(data, f"data.max_seq_len={segment + 2}",
                             f"veco.bilingual_max_len={side + 2}"))
    with pytest.raises(ConfigError, match=f"segments of up to {segment} tokens"):
        check_veco_data(make_cfg(data, f"data.max_seq_len={segment + 1}"))
    with pytest.raises(ConfigError, match=f"sentences of up to {side} tokens"):
        check_veco_data(make_cfg(data, f"veco.bilingual_max_len={side + 1}"))
