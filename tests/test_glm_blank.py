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
