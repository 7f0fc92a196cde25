"""GLM blank infilling: the spec's worked examples (mGLM.md A1.8) pinned position by position,
the span-length distribution (A1.2) and the placement invariants."""

from __future__ import annotations

import numpy as np
import pytest

from pretrain.glm_blank import GlmIds, gmask_suffix, make_block_data, sample_spans, span_length_pmf

IDS = GlmIds(cls=100, eos=101, pad=101, mask=103, smask=108, gmask=109, sop=106, eop=107,
             dblock=110)
CLS, M, S, E, G = IDS.cls, IDS.mask, IDS.sop, IDS.eop, IDS.gmask
TEXT = np.array([CLS, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # [CLS] x1 .. x9
SPANS = [(3, 4), (6, 8)]  # x3 ; x6 x7


def test_worked_example_part_b_order_s1_s2():
    out = make_block_data(TEXT, SPANS, [0, 1], M, IDS)
    assert out.sep == 9 and len(out.input_ids) == 14
    assert out.input_ids.tolist() == [CLS, 1, 2, M, 4, 5, M, 8, 9, S, 3, S, 6, 7]
    assert out.labels.tolist() == [CLS, 1, 2, M, 4, 5, M, 8, 9, 3, E, 6, 7, E]
    assert out.loss_mask.tolist() == [0] * 9 + [1] * 5
    assert out.position_ids[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 3, 6, 6, 6]
    assert out.position_ids[1].tolist() == [0] * 9 + [1, 2, 1, 2, 3]


def test_worked_example_part_b_order_s2_s1():
    out = make_block_data(TEXT, SPANS, [1, 0], M, IDS)
    assert out.sep == 9
    assert out.input_ids[9:].tolist() == [S, 6, 7, S, 3]
    assert out.labels[9:].tolist() == [6, 7, E, 3, E]
    assert out.position_ids[0, 9:].tolist() == [6, 6, 6, 3, 3]
    assert out.position_ids[1, 9:].tolist() == [1, 2, 3, 1, 2]


def test_gmask_suffix_example():
    text = np.array([CLS, 1, 2, 3, 4, 5, 6, 7, 8, IDS.eos])
    out = gmask_suffix(text, 7, IDS)
    assert out.input_ids.tolist() == [CLS, 1, 2, G, S, 3, 4, 5, 6, 7, 8]
    assert out.labels.tolist() == [CLS, 1, 2, G, 3, 4, 5, 6, 7, 8, IDS.eos]
    assert out.loss_mask.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert out.position_ids[0].tolist() == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3]
    assert out.position_ids[1].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert out.sep == 4


def test_dblock_corrupts_only_span_inputs():
    out = make_block_data(TEXT, SPANS, [0, 1], M, IDS, dblock=np.array([True, True, False]))
    assert out.input_ids[9:].tolist() == [S, IDS.dblock, S, IDS.dblock, 7]
    assert out.labels[9:].tolist() == [3, E, 6, 7, E]  # targets stay the text


def test_poisson_span_lengths():
    pmf = span_length_pmf(3, 40)
    assert len(pmf) == 39 and pmf.sum() == pytest.approx(1.0)
    expected = [.1572, .2358, .2358, .1768, .1061, .0531, .0227, .0085]
    assert np.round(pmf[:8], 4).tolist() == expected


def test_placement_never_overlaps_or_touches():
    rng = np.random.default_rng(0)
    for _ in range(500):
        lengths = rng.integers(1, 4, size=rng.integers(1, 4)).tolist()
        doc_len = sum(lengths) + len(lengths) - 1 + int(rng.integers(0, 5))
        spans = sample_spans(lengths, 1, doc_len, rng)
        assert [e - s for s, e in spans] == lengths
        assert spans[0][0] >= 1 and spans[-1][1] <= 1 + doc_len
        assert all(b[0] - a[1] >= 1 for a, b in zip(spans, spans[1:]))
    with pytest.raises(ValueError, match="do not fit"):
        sample_spans([3, 3], 1, 6, rng)


def _collator(**kw):
    from pretrain.glm_blank import BlankCollator, BlankConfig

    sentence_end = np.zeros(128, dtype=bool)
    sentence_end[50] = True  # "." in this toy vocabulary
    return BlankCollator(IDS, BlankConfig(**kw), seed=7, sentence_end=sentence_end)


def _windows(rng, b=4):
    out = []
    for _ in range(b):
        doc1 = rng.integers(1, 50, size=20)
        doc1[[6, 13]] = 50
        doc2 = rng.integers(1, 50, size=12)
        out.append(np.concatenate([[CLS], doc1, [IDS.eos, CLS], doc2]))
    return out


def test_collator_modes_layout_and_determinism():
    import random

    import torch

    from pretrain.glm_blank import MASK_MODE

    coll = _collator()
    rng = np.random.default_rng(1)
    modes = []
    for k in range(200):
        windows = _windows(rng)
        ids = list(range(4 * k, 4 * k + 4))
        random.seed(k)
        np.random.seed(k)
        batch = coll(windows, ids)
        random.seed(k + 1)
        np.random.seed(k + 1)
        again = coll(windows, ids)
        assert all(torch.equal(batch[key], again[key]) for key in batch)
        modes.append(int(batch["mode"][0]))
        # both position rows stay below the model's max_seq_len + 1 table rows
        assert int(batch["position_ids"].max()) <= max(len(w) for w in windows)
        for i in range(4):
            n, sep = int(batch["lengths"][i]), int(batch["sep"][i])
            inp, pos = batch["input_ids"][i], batch["position_ids"][i]
            assert (batch["loss_mask"][i, :sep] == 0).all() and batch["loss_mask"][i, n:].sum() == 0
            part_b = pos[0, sep:n]
            assert (part_b < sep).all()  # Part B points into Part A ...
            if batch["mode"][0] == MASK_MODE:  # ... at its span's mask token
                assert (inp[part_b] == IDS.mask).all()
                assert not (batch["labels"][i, sep:n] == IDS.eos).any()
    share = np.bincount(modes, minlength=3) / len(modes)
    assert abs(share[0] - 0.5) < 0.12 and abs(share[1] - 0.3) < 0.12 and abs(share[2] - 0.2) < 0.1


def test_too_short_sample_is_redrawn_not_dropped():
    coll = _collator(bert_prob=1.0, gap_sentence_prob=0.0, bert_ratio=0.9)
    windows = [np.array([CLS, 1, 2, 3, IDS.eos]), np.array([CLS] + list(range(1, 30)))]
    batch = coll(windows, [0, 1])
    assert batch["input_ids"].shape[0] == 2 and float(batch["redrawn"]) >= 1


def test_short_seq_batches_are_cut_into_cls_prefixed_sentence_windows():
    """short_seq_prob (A1.10): the whole batch becomes (max_seq_len - 1) // target windows per
    sample, each [CLS] + a contiguous stretch of the body starting after a sentence end."""
    from pretrain.glm_blank import short_windows

    sentence_end = np.zeros(128, dtype=bool)
    sentence_end[50] = True
    rng = np.random.default_rng(3)
    body = rng.integers(1, 50, size=300)
    body[9::10] = 50  # a sentence end every 10 tokens
    tokens = np.concatenate([[CLS], body])
    pieces = short_windows(tokens, 40, 3, IDS, sentence_end, np.random.default_rng(0))
    assert len(pieces) == 3
    text = "," + ",".join(map(str, body.tolist())) + ","
    for piece in pieces:
        assert piece[0] == CLS and 20 <= len(piece) - 1 <= 40
        assert "," + ",".join(map(str, piece[1:].tolist())) + "," in text  # contiguous
        start = text.index("," + ",".join(map(str, piece[1:].tolist())) + ",")
        assert start == 0 or body[text[:start].count(",") - 1] == 50  # after a sentence end
        assert piece[-1] == 50  # ends at a sentence end
    always = _collator(short_seq_prob=1.0, max_seq_len=64)
    never = _collator(short_seq_prob=0.0, max_seq_len=64)
    windows = [np.concatenate([[CLS], body[:63]]) for _ in range(2)]
    cut, whole = always(windows, [5, 6]), never(windows, [5, 6])
    assert whole["input_ids"].shape[0] == 2
    assert cut["input_ids"].shape[0] == 2 * (63 // 32) and int(cut["lengths"].max()) < \
        int(whole["lengths"].max())
    again = always(windows, [5, 6])
    assert all(torch_equal(cut[k], again[k]) for k in cut)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
