"""GLM blank infilling (spec ../shared/specs/mGLM.md A1; reference M:blocklm_utils.py).

A sample's spans are cut out of the text (Part A keeps one mask token per span, positions
compressed), then appended in a shuffled order as Part B (`[sop] span` inputs, `span [eop]`
targets, position = the span's mask position, block positions 1..L+1). `sep` = |Part A|: Part A
attends bidirectionally within itself, Part B causally plus all of Part A (A1.6).

Deliberate differences from the reference (README, "mGLM: decisions"): every random draw comes
from a numpy Generator seeded by (seed, sample id, tag) — [dBLOCK] included, which the reference
draws from the global `random` — and a sample whose spans do not fit is re-drawn, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MASK_MODE, SENTENCE_MODE, GPT_MODE = 0, 1, 2


@dataclass(frozen=True)
class GlmIds:
    cls: int
    eos: int
    pad: int
    mask: int
    smask: int
    gmask: int
    sop: int
    eop: int
    dblock: int

    @classmethod
    def from_tokenizer(cls, tokenizer: dict) -> "GlmIds":
        return cls(cls=tokenizer["cls_id"], eos=tokenizer["eos_id"], pad=tokenizer["pad_id"],
                   mask=tokenizer["mask_id"], smask=tokenizer["smask_id"],
                   gmask=tokenizer["gmask_id"], sop=tokenizer["sop_id"],
                   eop=tokenizer["eop_id"], dblock=tokenizer["dblock_id"])


def span_length_pmf(avg_block_length: float = 3.0, max_block_length: int = 40) -> np.ndarray:
    """P(length = 1 .. max_block_length - 1): Poisson(λ) restricted and renormalised
    (M:blocklm_utils.py:53)."""
    lam = avg_block_length
    pmf = np.array([math.exp(-lam) * lam ** k / math.factorial(k)
                    for k in range(1, max_block_length)])
    return pmf / pmf.sum()


@dataclass(frozen=True)
class BlockSample:
    input_ids: np.ndarray  # [N + 2n]
    labels: np.ndarray
    loss_mask: np.ndarray  # float32
    position_ids: np.ndarray  # [2, N + 2n]: position, block position
    sep: int  # |Part A|


def make_block_data(tokens: np.ndarray, spans: list[tuple[int, int]], order: list[int],
                    mask_id: int, ids: GlmIds, dblock: np.ndarray | None = None) -> BlockSample:
    """Part A / Part B of `tokens` (A1.5). `spans`: (start, end exclusive) in left-to-right
    order, non-overlapping; `order`: Part-B order as indices into `spans`; `dblock`: optional
    bool per Part-B input token (after each [sop]) to replace by [dBLOCK]."""
    tokens = np.asarray(tokens, dtype=np.int64)
    n = len(tokens)
    keep = np.ones(n, dtype=bool)
    for start, end in spans:
        keep[start + 1:end] = False  # each span collapses onto its first token's slot
    # compressed positions: position of the kept slot in Part A
    part_a_pos = np.cumsum(keep) - 1
    part_a = tokens.copy()
    for start, _ in spans:
        part_a[start] = mask_id
    part_a = part_a[keep]
    mask_positions = [int(part_a_pos[start]) for start, _ in spans]
    sep = len(part_a)
    b_in, b_lab, b_pos, b_blk = [], [], [], []
    for i in order:
        start, end = spans[i]
        span = tokens[start:end]
        length = end - start
        b_in.append(np.concatenate([[ids.sop], span]))
        b_lab.append(np.concatenate([span, [ids.eop]]))
        b_pos.append(np.full(length + 1, mask_positions[i]))
        b_blk.append(np.arange(1, length + 2))
    if b_in:
        part_b_in = np.concatenate(b_in)
        if dblock is not None:
            slots = np.ones(len(part_b_in), dtype=bool)
            starts = np.cumsum([0] + [len(x) for x in b_in[:-1]])
            slots[starts] = False  # never a [sop]
            replace = np.zeros(len(part_b_in), dtype=bool)
            replace[np.flatnonzero(slots)] = dblock[:int(slots.sum())]
            part_b_in = np.where(replace, ids.dblock, part_b_in)
        part_b_lab, part_b_pos = np.concatenate(b_lab), np.concatenate(b_pos)
        part_b_blk = np.concatenate(b_blk)
    else:
        part_b_in = part_b_lab = part_b_pos = part_b_blk = np.zeros(0, dtype=np.int64)
    if (part_b_lab == ids.eos).any():  # M:blocklm_utils.py:235-237
        raise ValueError("a span covers an eos token (document boundaries were not respected)")
    input_ids = np.concatenate([part_a, part_b_in]).astype(np.int64)
    labels = np.concatenate([part_a, part_b_lab]).astype(np.int64)
    loss_mask = np.concatenate([np.zeros(sep), np.ones(len(part_b_in))]).astype(np.float32)
    positions = np.stack([np.concatenate([np.arange(sep), part_b_pos]),
                          np.concatenate([np.zeros(sep, dtype=np.int64), part_b_blk])])
    return BlockSample(input_ids, labels, loss_mask, positions.astype(np.int64), sep)


def gmask_suffix(tokens: np.ndarray, gen_len: int, ids: GlmIds,
                 doc_loss_mask: np.ndarray | None = None) -> BlockSample:
    """[gMASK] suffix variant (A1.4): source + [gMASK] + [sop] + target[:-1] → source + [gMASK]
    + target; no [eop] (the reference's layout); loss over the target (× the document mask)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    n = len(tokens)
    cut = n - gen_len
    source, target = tokens[:cut], tokens[cut:]
    input_ids = np.concatenate([source, [ids.gmask, ids.sop], target[:-1]])
    labels = np.concatenate([source, [ids.gmask], target])
    target_mask = (np.ones(gen_len, dtype=np.float32) if doc_loss_mask is None
                   else np.asarray(doc_loss_mask[cut:], dtype=np.float32))
    loss_mask = np.concatenate([np.zeros(cut + 1, dtype=np.float32), target_mask])
    positions = np.concatenate([np.arange(cut + 1), np.full(gen_len, cut)])
    blocks = np.concatenate([np.zeros(cut, dtype=np.int64), np.arange(gen_len + 1)])
    return BlockSample(input_ids.astype(np.int64), labels.astype(np.int64), loss_mask,
                       np.stack([positions, blocks]).astype(np.int64), cut + 1)


def sample_spans(lengths: list[int], doc_start: int, doc_len: int,
                 rng: np.random.Generator) -> list[tuple[int, int]]:
    """Place spans of `lengths` (in this left-to-right order) in [doc_start, doc_start+doc_len)
    never overlapping or adjacent (A1.2): sorted uniform draws from {0 .. T - ΣL - n + 1}."""
    n, total = len(lengths), sum(lengths)
    free = doc_len - total - n + 1
    if free < 0:
        raise ValueError("spans do not fit")
    places = np.sort(rng.integers(0, free + 1, size=n))
    spans, offset = [], 0
    for place, length in zip(places.tolist(), lengths):
        start = doc_start + place + offset
        spans.append((start, start + length))
        offset += length + 1
    return spans
