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

    @property
    def pieces(self) -> int:
        """N: ids below are SentencePiece pieces, the command tokens are N .. N + 10 (A2.2)."""
        return self.eos

    @classmethod
    def from_tokenizer(cls, tokenizer: dict) -> "GlmIds":
        """From a manifest "tokenizer" block (`data_prep.tokenizer.tokenizer_info`)."""
        return cls(cls=tokenizer["cls_id"], eos=tokenizer["eos_id"], pad=tokenizer["pad_id"],
                   mask=tokenizer["mask_id"], smask=tokenizer["smask_id"],
                   gmask=tokenizer["gmask_id"], sop=tokenizer["sop_id"],
                   eop=tokenizer["eop_id"], dblock=tokenizer["dblock_id"])

    @classmethod
    def from_hf_tokenizer(cls, tokenizer) -> "GlmIds":
        """From a loaded tokenizer; ValueError unless it has GLM's layout."""
        from data_prep.tokenizer import tokenizer_info

        info = tokenizer_info(tokenizer)
        if info.get("layout") != "glm":
            raise ValueError(f"{tokenizer.name_or_path} is not a GLM tokenizer (no GLM command "
                             f"tokens); train one with `python -m data_prep train-tokenizer "
                             f"--layout glm`")
        return cls.from_tokenizer(info)


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


@dataclass(frozen=True)
class BlankConfig:
    """Defaults = mGLM-Large (M:config/ds_multi_blockta_large.sh:8-15; spec A1.1)."""

    bert_prob: float = 0.5
    gap_sentence_prob: float = 0.3
    bert_ratio: float = 0.15
    gap_sentence_ratio: float = 0.15
    avg_block_length: float = 3.0
    max_block_length: int = 40
    gpt_min_ratio: float = 0.25
    gpt_infill_prob: float = 0.5
    block_mask_prob: float = 0.1
    short_seq_prob: float = 0.02  # A1.10: a batch is first cut into shorter windows
    max_seq_len: int = 512  # --seq-length: bounds the short windows' target length (A1.10)
    max_redraws: int = 10  # ours: the reference drops the sample instead (A1.2)


def documents(tokens: np.ndarray, ids: GlmIds) -> list[tuple[int, int]]:
    """Maskable stretches (start, length) between eos tokens, without each leading [CLS] and
    trailing eos; a truncated last document also loses its last token (A1.2)."""
    out, start = [], 0
    ends = np.flatnonzero(tokens == ids.eos).tolist()
    truncated = not ends or ends[-1] != len(tokens) - 1
    for end in ends + ([len(tokens)] if truncated else []):
        s = start + (1 if start < len(tokens) and tokens[start] == ids.cls else 0)
        e = end - (1 if end == len(tokens) else 0)  # truncated: keep its last token
        if e > s:
            out.append((s, e - s))
        start = end + 1
    return out


def _draw_lengths(rng: np.random.Generator, pmf: np.ndarray, budget: int) -> list[int]:
    lengths: list[int] = []
    while sum(lengths) < budget:
        lengths.append(int(rng.choice(len(pmf), p=pmf)) + 1)
    return lengths


def mask_spans(tokens: np.ndarray, cfg: BlankConfig, ids: GlmIds, rng: np.random.Generator,
               pmf: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """[MASK] mode spans (A1.2) and how many re-draws it took (ours: never dropped)."""
    docs = sorted(documents(tokens, ids), key=lambda d: d[1])
    budget = max(1, int(cfg.bert_ratio * len(tokens)))
    for attempt in range(cfg.max_redraws + 1):
        lengths = _draw_lengths(rng, pmf, budget)
        if attempt == cfg.max_redraws:  # last resort: drop the longest until it fits
            lengths.sort()
            while lengths and sum(lengths) + len(lengths) > docs[-1][1]:
                lengths.pop()
            lengths = lengths or [1]
        rng.shuffle(lengths)
        spans, rest = [], list(lengths)
        for start, length in docs[:-1]:
            mine, used = [], 0
            while rest and used + rest[0] <= int(cfg.bert_ratio * length):
                used += rest[0]
                mine.append(rest.pop(0))
            if mine:
                spans += sample_spans(mine, start, length, rng)
        start, length = docs[-1]
        if sum(rest) + len(rest) <= length:
            spans += sample_spans(rest, start, length, rng) if rest else []
            return sorted(spans), attempt
    raise AssertionError("unreachable: the last attempt always fits")


def sentence_spans(tokens: np.ndarray, cfg: BlankConfig, ids: GlmIds, rng: np.random.Generator,
                   sentence_end: np.ndarray) -> list[tuple[int, int]]:
    """[sMASK] mode (A1.3): sentences from index 1, ended by a sentence-end token, reset by eos;
    shuffled, taken until they cover gap_sentence_ratio of the tokens."""
    sentences, start = [], 1
    for i in range(1, len(tokens)):
        if tokens[i] == ids.eos:
            start = i + 1
        elif sentence_end[tokens[i]]:
            sentences.append((start, i + 1))
            start = i + 1
    if start < len(tokens) and tokens[start:].size and tokens[-1] != ids.eos:
        sentences.append((start, len(tokens)))
    order = rng.permutation(len(sentences))
    chosen, covered = [], 0
    for k in order.tolist():
        if covered >= int(cfg.gap_sentence_ratio * len(tokens)):
            break
        chosen.append(sentences[k])
        covered += sentences[k][1] - sentences[k][0]
    return sorted(chosen)


def _seeded(seed: int, key: tuple[int, ...], tag: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key, tag])


def short_windows(tokens: np.ndarray, target: int, count: int, ids: GlmIds,
                  sentence_end: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A1.10 (M:blocklm_utils.py `split_samples`): `count` random windows of about `target`
    tokens from one window's body (its leading [CLS] dropped). Each start moves left to a
    sentence start (after a sentence end or an eos, never on an eos); each end moves left to a
    sentence end or eos unless that keeps less than half the target; each window is
    re-prefixed with [CLS]."""
    body = tokens[1:]
    boundary = sentence_end[body] | (body == ids.eos)  # a sentence may start after these
    out = []
    for _ in range(count):
        if target >= len(body):
            piece = body
        else:
            start = int(rng.integers(0, len(body) - target))
            while start > 0 and (body[start] == ids.eos or not boundary[start - 1]):
                start -= 1
            end = start + target
            while end > start and not boundary[end - 1]:
                end -= 1
            if end - start < target // 2:
                end = start + target
            piece = body[start:end]
        out.append(np.concatenate([[ids.cls], piece]).astype(np.int64))
    return out


class BlankCollator:
    """Windows → one blank-infilling batch (dict of tensors; README "mGLM" for the layout)."""

    def __init__(self, ids: GlmIds, cfg: BlankConfig, seed: int, sentence_end: np.ndarray):
        self.ids, self.cfg, self.seed = ids, cfg, int(seed)
        self.sentence_end = np.asarray(sentence_end, dtype=bool)
        self.pmf = span_length_pmf(cfg.avg_block_length, cfg.max_block_length)

    def mode(self, first_sample: int) -> int:
        r = _seeded(self.seed, (first_sample,), 0x30DE).random()
        if r < self.cfg.bert_prob:
            return MASK_MODE
        return SENTENCE_MODE if r < self.cfg.bert_prob + self.cfg.gap_sentence_prob else GPT_MODE

    def split(self, windows: list[np.ndarray], sample_ids: list[int]
              ) -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
        """With probability short_seq_prob per batch (A1.10), every window becomes
        (max_seq_len - 1) // target short windows, target ~ U[32, max_seq_len - 2]; returns the
        windows and each one's seed key (sample id, piece number)."""
        cfg = self.cfg
        keys = [(sid,) for sid in sample_ids]
        rng = _seeded(self.seed, (sample_ids[0],), 0x5E9)
        if cfg.max_seq_len - 2 < 32 or rng.random() >= cfg.short_seq_prob:
            return windows, keys
        target = int(rng.integers(32, cfg.max_seq_len - 1))
        count = (cfg.max_seq_len - 1) // target
        out, out_keys = [], []
        for window, sid in zip(windows, sample_ids):
            pieces = short_windows(np.asarray(window, dtype=np.int64), target, count, self.ids,
                                   self.sentence_end, _seeded(self.seed, (sid,), 0x5E10))
            out += pieces
            out_keys += [(sid, 1 + j) for j in range(len(pieces))]
        return out, out_keys

    def sample(self, tokens: np.ndarray, key: tuple[int, ...], mode: int,
               max_gen: int) -> tuple[BlockSample, int]:
        ids, cfg = self.ids, self.cfg
        rng = _seeded(self.seed, key, 0x5A11 + mode)
        if mode == MASK_MODE:
            spans, redrawn = mask_spans(tokens, cfg, ids, rng, self.pmf)
            order = rng.permutation(len(spans)).tolist()
            dblock = rng.random(len(tokens)) < cfg.block_mask_prob
            return make_block_data(tokens, spans, order, ids.mask, ids, dblock), redrawn
        if mode == SENTENCE_MODE:
            spans = sentence_spans(tokens, cfg, ids, rng, self.sentence_end)
            if not spans:  # no sentence at all: fall back to one [MASK]-style span
                spans, _ = mask_spans(tokens, cfg, ids, rng, self.pmf)
            return make_block_data(tokens, spans, rng.permutation(len(spans)).tolist(),
                                   ids.smask, ids), 0
        gen_len = max(1, min(max_gen, len(tokens) - 2))
        multi_doc = bool((tokens[:-1] == ids.eos).any())
        if multi_doc or rng.random() < cfg.gpt_infill_prob:
            doc_mask = (tokens != ids.cls).astype(np.float32)  # a later [CLS] is not a target
            return gmask_suffix(tokens, gen_len, ids, doc_mask), 0
        start, length = max(documents(tokens, ids), key=lambda d: d[1])
        gen_len = min(gen_len, length)
        spans = sample_spans([gen_len], start, length, rng)
        return make_block_data(tokens, spans, [0], ids.gmask, ids), 0

    def __call__(self, windows: list[np.ndarray], sample_ids: list[int],
                 mode: int | None = None) -> dict:
        """`mode`: force one (evaluation covers every mode); None draws it (A1.1)."""
        import torch

        mode = self.mode(sample_ids[0]) if mode is None else mode
        windows, keys = self.split(list(windows), list(sample_ids))
        lens = [len(w) for w in windows]
        rng = _seeded(self.seed, (sample_ids[0],), 0x6E11)
        low = int(self.cfg.gpt_min_ratio * min(lens))
        max_gen = int(rng.integers(low, max(low, max(lens) - 2) + 1))
        samples, redrawn = [], 0
        for window, key in zip(windows, keys):
            sample, r = self.sample(np.asarray(window, dtype=np.int64), key, mode, max_gen)
            samples.append(sample)
            redrawn += r
        width = max(len(s.input_ids) for s in samples)
        b = len(samples)
        out = {"input_ids": torch.full((b, width), self.ids.pad, dtype=torch.long),
               "labels": torch.full((b, width), self.ids.pad, dtype=torch.long),
               "loss_mask": torch.zeros((b, width), dtype=torch.float32),
               "position_ids": torch.zeros((b, 2, width), dtype=torch.long),
               "sep": torch.tensor([s.sep for s in samples], dtype=torch.long),
               "lengths": torch.tensor([len(s.input_ids) for s in samples], dtype=torch.long),
               "mode": torch.full((b,), mode, dtype=torch.long),
               "redrawn": torch.tensor(float(redrawn))}
        for i, s in enumerate(samples):
            n = len(s.input_ids)
            out["input_ids"][i, :n] = torch.from_numpy(s.input_ids)
            out["labels"][i, :n] = torch.from_numpy(s.labels)
            out["loss_mask"][i, :n] = torch.from_numpy(s.loss_mask)
            out["position_ids"][i, :, :n] = torch.from_numpy(s.position_ids)
        return out
