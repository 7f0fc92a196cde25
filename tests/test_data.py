"""Data pipeline: α weights, blended order (determinism, proportions, O(1) jumps), per-rank
streams that resume exactly and agree across world sizes, padding, held-out split."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from data_prep.format import MRCDataset
from data_prep.format import MRCExample
from pretrain.config import load_config
from pretrain.data import (
    BlendedSampler, MRCCollator, blend_weights, data_info, eval_batches, eval_samples,
    format_weights,
    split_ids, train_batches,
)

from conftest import PROJECT_ROOT, query_of


def test_blend_weights_alpha():
    sizes = {"en": 300, "de": 100}
    natural = blend_weights(sizes, 1.0)
    assert natural["en"] == pytest.approx(0.75) and natural["de"] == pytest.approx(0.25)
    uniform = blend_weights(sizes, 0.0)
    assert uniform == pytest.approx({"en": 0.5, "de": 0.5})
    # α = 0.5: p ∝ sqrt(0.75), sqrt(0.25) = (√3 / 2, 1 / 2) → en = √3 / (√3 + 1)
    half = blend_weights(sizes, 0.5)
    assert half["en"] == pytest.approx(math.sqrt(3) / (math.sqrt(3) + 1))
    assert half["de"] == pytest.approx(1 / (math.sqrt(3) + 1))
    assert sum(blend_weights({"a": 5, "b": 0, "c": 1}, 0.3).values()) == pytest.approx(1.0)
    line = format_weights(sizes, half)
    assert "en 300 ex (75.0%)" in line and "63.4%" in line and "de 100 ex" in line


def test_sampler_proportions_and_passes():
    sizes = {"a": 1000, "b": 100, "c": 10}
    sampler = BlendedSampler(sizes, alpha=0.3, seed=7)
    samples = sampler.take(0, 4000)
    counts = Counter(lang for lang, _ in samples)
    weights = blend_weights(sizes, 0.3)
    for i, lang in enumerate(sizes):
        assert counts[i] / 4000 == pytest.approx(weights[lang], abs=0.02)
    assert all(0 <= k < sizes[sampler.languages[lang]] for lang, k in samples)
    # an upsampled language goes through all its examples before repeating one
    draws_c = [k for lang, k in samples if lang == 2]
    assert len(draws_c) > 30
    for start in range(0, 30, 10):
        assert sorted(draws_c[start:start + 10]) == list(range(10))


@pytest.mark.parametrize("block_size", [1 << 16, 16, 7])
def test_sampler_determinism_epochs_and_jumps(monkeypatch, block_size):
    monkeypatch.setattr(BlendedSampler, "block_size", block_size)
    sizes = {"a": 60, "b": 25}
    first = BlendedSampler(sizes, 0.5, seed=1)
    assert first.epoch_length == 85
    again = BlendedSampler(sizes, 0.5, seed=1)
    assert first.take(0, 200) == again.take(0, 200)
    assert first.take(0, 85) != first.take(85, 85)  # epochs differ
    assert BlendedSampler(sizes, 0.5, seed=2).take(0, 85) != first.take(0, 85)
    whole = BlendedSampler(sizes, 0.5, seed=1).take(0, 300)
    for k in (0, 1, 84, 85, 86, 170, 299):  # fresh sampler, jump straight to k
        assert BlendedSampler(sizes, 0.5, seed=1).take(k, 300 - k) == whole[k:]
        assert BlendedSampler(sizes, 0.5, seed=1)[k] == whole[k]
    # every epoch holds exactly each language's quota, and each pass covers a language once
    for epoch in range(3):
        langs = Counter(lang for lang, _ in whole[85 * epoch: 85 * (epoch + 1)])
        assert [langs[0], langs[1]] == first.counts.tolist()
    draws_b = [k for lang, k in whole if lang == 1]
    assert sorted(draws_b[:25]) == list(range(25)) and sorted(draws_b[25:50]) == list(range(25))


def _config(root, **over):
    overrides = [f"data.paths=[{root}]", "data.num_workers=0", "train.micro_batch_size=4",
                 "train.global_batch_size=8"] + [f"{k}={v}" for k, v in over.items()]
    return load_config(PROJECT_ROOT / "configs" / "tiny_mpmr.yaml", overrides)


def _rows(batch: dict) -> list[tuple]:
    """Unpadded sequences with their language: identity of each sample in a batch."""
    out = []
    for ids, mask, lang in zip(batch["input_ids"], batch["attention_mask"], batch["lang_id"]):
        out.append((int(lang), tuple(ids[mask.bool()].tolist())))
    return out


def _take(iterator, n: int) -> list[dict]:
    return [next(iterator) for _ in range(n)]


def test_resume_is_the_exact_tail(tiny_mrc_data):
    cfg = _config(tiny_mrc_data)
    info = data_info(cfg)
    straight = _take(train_batches(cfg, 0, 1, 0, info), 8)
    resumed = _take(train_batches(cfg, 0, 1, 24, info), 5)  # 24 samples = 6 micro-batches of 4
    for a, b in zip(straight[6:], resumed):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    # any count, e.g. after a change of batch shape: the global order just continues
    rows = [row for batch in straight for row in _rows(batch)]
    shifted = [row for batch in _take(train_batches(cfg, 0, 1, 3, info), 2) for row in _rows(batch)]
    assert shifted == rows[3:11]


def test_world_sizes_see_the_same_global_batches(tiny_mrc_data):
    cfg = _config(tiny_mrc_data)
    info = data_info(cfg)
    one = _take(train_batches(cfg, 0, 1, 0, info), 6)  # 3 global batches of 8
    two = [_take(train_batches(cfg, rank, 2, 0, info), 3) for rank in (0, 1)]
    for step in range(3):
        single = _rows(one[2 * step]) + _rows(one[2 * step + 1])
        double = _rows(two[0][step]) + _rows(two[1][step])
        assert single == double
    # resume on 2 ranks after 1 global batch = tail of each rank's stream
    for rank in (0, 1):
        tail = _take(train_batches(cfg, rank, 2, 8, info), 2)
        assert [_rows(b) for b in tail] == [_rows(b) for b in two[rank][1:]]


def test_background_workers_give_the_same_stream(tiny_mrc_data):
    cfg = _config(tiny_mrc_data)
    info = data_info(cfg)
    inline = _take(train_batches(cfg, 1, 2, 16, info), 3)
    workers = _take(train_batches(_config(tiny_mrc_data, **{"data.num_workers": 2}), 1, 2, 16,
                                  info), 3)
    assert [_rows(b) for b in inline] == [_rows(b) for b in workers]


def test_blend_proportions_of_the_stream(tiny_mrc_data):
    cfg = _config(tiny_mrc_data, **{"data.alpha": 0.0})  # uniform: half en, half de
    info = data_info(cfg)
    langs = torch.cat([b["lang_id"] for b in _take(train_batches(cfg, 0, 1, 0, info), 100)])
    assert info.languages == ["de", "en"]
    assert (langs == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_padding_to_longest_in_micro_batch(tiny_mrc_data):
    cfg = _config(tiny_mrc_data)
    info = data_info(cfg)
    datasets = [MRCDataset(folder) for folder in info.folders]
    for batch in _take(train_batches(cfg, 0, 1, 0, info), 5):
        lengths = batch["attention_mask"].sum(1)
        assert batch["input_ids"].shape == batch["attention_mask"].shape == (4, int(lengths.max()))
        assert batch["input_ids"].dtype == torch.long
        for row, length in enumerate(lengths.tolist()):
            assert (batch["input_ids"][row, length:] == info.tokenizer["pad_id"]).all()
            assert batch["context_end"][row] < length  # final </s> is not context
        spans = batch["answer_spans"]
        assert spans.shape[1] == 3 and spans.dtype == torch.long
        assert torch.equal(torch.bincount(spans[:, 0], minlength=4), batch["answer_counts"])
        for b, s, e in spans.tolist():
            assert batch["context_start"][b] <= s <= e < batch["context_end"][b]
    assert len(datasets) == 2


def test_collator_rejects_too_long_sequences():
    example = MRCExample(np.arange(10, dtype=np.int32), 4, 9, np.zeros((0, 2), np.int32))
    batch = MRCCollator(pad_id=1, max_seq_len=10)([(0, example)])
    assert batch["input_ids"].shape == (1, 10) and batch["answer_spans"].shape == (0, 3)
    with pytest.raises(ValueError, match="max_seq_len=8"):
        MRCCollator(pad_id=1, max_seq_len=8)([(0, example)])


def test_held_out_split_is_by_entity(tiny_mrc_data):
    cfg = _config(tiny_mrc_data, **{"data.eval_entities": 3})
    info = data_info(cfg)
    datasets = [MRCDataset(folder) for folder in info.folders]
    for lang, (dataset, train, held) in enumerate(zip(datasets, info.train_ids, info.eval_ids)):
        assert not set(train.tolist()) & set(held.tolist())
        assert len(train) + len(held) == info.sizes[info.languages[lang]]
        offsets = dataset.group_offsets()
        held_groups = {int(np.searchsorted(offsets, i, side="right")) - 1 for i in held}
        assert len(held_groups) == 3  # three whole entities: every example of each
        assert sum(int(offsets[g + 1] - offsets[g]) for g in held_groups) == len(held)
        # no held-out query ever appears in a training example
        held_queries = {query_of(dataset[int(i)]) for i in held}
        assert not held_queries & {query_of(dataset[int(i)]) for i in train}
    offsets = datasets[0].group_offsets()
    again = split_ids(offsets, 3, cfg.data.seed, info.languages[0])
    assert np.array_equal(again[1], info.eval_ids[0])  # deterministic from (seed, language)
    other_seed = split_ids(offsets, 3, cfg.data.seed + 1, info.languages[0])
    assert not np.array_equal(other_seed[1], info.eval_ids[0])
    with pytest.raises(ValueError, match="not more than eval_entities"):
        split_ids(offsets, len(offsets) - 1, 0, "en")


def test_held_out_split_never_overlaps_training(tiny_mrc_data):
    cfg = _config(tiny_mrc_data, **{"data.eval_entities": 2})
    info = data_info(cfg)
    n_held = sum(len(ids) for ids in info.eval_ids)
    # what eval_batches yields is exactly the held-out examples, never a training sample
    per_rank = [[row for b in eval_batches(cfg, rank, 2, info) for row in _rows(b)]
                for rank in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == n_held // 2  # split evenly
    # shuffled across languages: a cut evaluation (train.eval_batches) still sees every language
    langs = [lang for lang, _ in eval_samples(info, 1, cfg.data.seed)]
    assert langs != sorted(langs) and set(langs) == {0, 1}
    datasets = [MRCDataset(folder) for folder in info.folders]
    assert len(per_rank[0] + per_rank[1]) == n_held - n_held % 2
    held_rows = {(lang, tuple(datasets[lang][int(i)].input_ids.tolist()))
                 for lang, ids in enumerate(info.eval_ids) for i in ids}
    train_rows = {(lang, tuple(datasets[lang][int(i)].input_ids.tolist()))
                  for lang, ids in enumerate(info.train_ids) for i in ids}
    assert set(per_rank[0] + per_rank[1]) == held_rows
    assert not held_rows & train_rows
    stream = {row for b in _take(train_batches(cfg, 0, 1, 0, info), 40) for row in _rows(b)}
    assert not stream & held_rows


def test_data_identity_is_stable(tiny_mrc_data):
    cfg = _config(tiny_mrc_data)
    assert data_info(cfg).manifest_hash == data_info(cfg).manifest_hash
    only_en = _config(tiny_mrc_data / "en")
    assert data_info(only_en).manifest_hash != data_info(cfg).manifest_hash
