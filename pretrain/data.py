"""mPMR data pipeline: per-language MRC folders → α blend → deterministic global order → per-rank
micro-batches padded to their longest sequence.

* Held-out split by entity: per language, the first `data.eval_entities` entities of a
  permutation seeded by (data.seed, language) are held out with all their examples (answerable
  and unanswerable — every example of a held-out query), as the reference's `--PMR_test`; the
  other entities' examples are training examples. Entities are the groups of consecutive
  examples recorded by data_prep (`MRCDataset.group_offsets`).
* Blend: p_i ∝ (n_i / N)^α over the training sizes n_i (`blend_weights`).
* Global order (`BlendedSampler`): an epoch has E = Σ n_i positions; language i owns
  c_i ≈ E·p_i of them (largest-remainder rounding). The epoch is cut into blocks of 65,536
  positions, each with a fixed share of every language's quota, shuffled by a seed from
  (seed, epoch, block) — so a jump costs one block, not one epoch, and every block holds the
  languages in proportion. Language i's d-th draw overall (counting across epochs) is
  example perm_{i,p}[d mod n_i] with p = d div n_i and perm_{i,p} a permutation seeded by
  (seed, language, p): an upsampled language goes through all its examples before repeating
  one, a downsampled one sees new examples each epoch. Global sample n is a pure function of
  (seed, sizes, α, n): resuming at any consumed-sample count costs one block shuffle plus one
  O(n_i) permutation per language, never a replay of the data.
* Ranks (`train_batches`): global batch b is samples [b·G, (b+1)·G) of the global order; inside
  it, each chunk of micro·world consecutive samples is one micro-step, rank r taking the r-th
  slice of `micro_batch_size`. So the same global batches (and, for equal micro sizes, the same
  micro-batches) are seen for any world size, which keeps resumes across world sizes consistent.
* Sequences longer than `data.max_seq_len` are rejected by `config.validate` (exact lengths from
  the .idx) and again by the collator — never truncated silently.

Never imports DeepSpeed or torch.distributed: ranks and world size are plain arguments.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from data_prep.format import MRCDataset, MRCExample, manifest_hash
from pretrain.config import RunConfig, read_manifests

Sample = tuple[int, int]  # (language id, example id inside that language's folder)


# ---------------------------------------------------------------------- blend weights

def blend_weights(sizes: dict[str, int], alpha: float) -> dict[str, float]:
    """p_i ∝ (n_i / N)^α, normalised to sum to 1 (α = 1 natural, α = 0 uniform).
    Languages with n_i = 0 get weight 0."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    total = sum(sizes.values())
    if total <= 0:
        raise ValueError("blend_weights: every language is empty")
    raw = {lang: (n / total) ** alpha if n > 0 else 0.0 for lang, n in sizes.items()}
    norm = sum(raw.values())
    return {lang: value / norm for lang, value in raw.items()}


def format_weights(sizes: dict[str, int], weights: dict[str, float]) -> str:
    """One line for the start-up log: `en 300 ex (75.0%) → 63.4% | de 100 ex (25.0%) → 36.6%`."""
    total = sum(sizes.values()) or 1
    return " | ".join(f"{lang} {sizes[lang]} ex ({100 * sizes[lang] / total:.1f}%) → "
                      f"{100 * weights[lang]:.1f}%" for lang in sizes)


def _lang_seed(lang: str) -> int:
    return zlib.crc32(lang.encode("utf-8"))


def _allocate(total: int, weights: Sequence[float]) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `weights` (largest remainder)."""
    exact = np.asarray(weights, dtype=np.float64) * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


# ---------------------------------------------------------------------- global order

class BlendedSampler:
    """Deterministic blended order: global sample n → (language id, position k in that
    language's training list), k ∈ [0, sizes[lang]).

    `sizes` are the training sizes (dict order = language ids); the blend weights come from
    `weight_sizes` when given (mGLM weighs languages by text bytes, not by samples), else from
    `sizes`. The only state a run needs to resume is the number of consumed samples.
    """

    block_size = 1 << 16  # positions shuffled together; bounds the cost of a jump

    def __init__(self, sizes: dict[str, int], alpha: float, seed: int,
                 weight_sizes: dict[str, int] | None = None):
        self.languages = list(sizes)
        self.sizes = np.array([sizes[lang] for lang in self.languages], dtype=np.int64)
        if weight_sizes is not None and set(weight_sizes) != set(sizes):
            raise ValueError("weight_sizes must name the same languages as sizes")
        self.weights = blend_weights(weight_sizes if weight_sizes is not None else sizes, alpha)
        self.seed = int(seed)
        self.epoch_length = int(self.sizes.sum())
        self.counts = _allocate(self.epoch_length, [self.weights[x] for x in self.languages])
        # Per block of the epoch: how many positions each language gets (proportional to what
        # is left, so the epoch totals are exactly `counts`) and the draws before the block.
        n_blocks = -(-self.epoch_length // self.block_size)
        self.block_counts = np.zeros((n_blocks, len(self.languages)), dtype=np.int64)
        remaining = self.counts.copy()
        for block in range(n_blocks):
            length = min(self.block_size, self.epoch_length - block * self.block_size)
            self.block_counts[block] = _allocate(length, remaining / remaining.sum())
            remaining -= self.block_counts[block]
        self.draws_before = np.cumsum(self.block_counts, axis=0) - self.block_counts
        self._block_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._pass_cache: dict[tuple[int, int], np.ndarray] = {}

    def epoch_of(self, n: int) -> int:
        return n // self.epoch_length

    def _block_plan(self, epoch: int, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions of one block: language ids (a shuffle seeded by (seed, epoch, block) of
        each language's quota) and, per position, the language's draw number within the epoch."""
        key = (epoch, block)
        plan = self._block_cache.get(key)
        if plan is None:
            rng = np.random.default_rng([self.seed, epoch, block, 0x5A3D])
            labels = np.repeat(np.arange(len(self.languages)), self.block_counts[block])
            rng.shuffle(labels)
            draws = np.empty(len(labels), dtype=np.int64)
            for lang in np.unique(labels):
                where = np.flatnonzero(labels == lang)
                draws[where] = self.draws_before[block, lang] + np.arange(len(where))
            plan = (labels, draws)
            self._block_cache = {key: plan}  # consumption is sequential: keep one block
        return plan

    def _language_pass(self, lang_id: int, pass_index: int) -> np.ndarray:
        """Order of language `lang_id`'s examples in its `pass_index`-th pass over them."""
        key = (lang_id, pass_index)
        order = self._pass_cache.get(key)
        if order is None:
            rng = np.random.default_rng([self.seed, _lang_seed(self.languages[lang_id]),
                                         pass_index, 0x1A9])
            order = rng.permutation(int(self.sizes[lang_id]))
            if len(order) < 2**31:
                order = order.astype(np.int32)  # halves the memory of big languages
            # keep at most two passes per language (the current one and its successor)
            stale = [k for k in self._pass_cache if k[0] == lang_id and k[1] < pass_index - 1]
            for k in stale:
                del self._pass_cache[k]
            self._pass_cache[key] = order
        return order

    def take(self, start: int, count: int) -> list[Sample]:
        """Global samples start, …, start + count - 1 as (language id, position k)."""
        if start < 0 or count < 0:
            raise ValueError("start and count must be >= 0")
        out: list[Sample] = []
        n = start
        while n < start + count:
            epoch, offset = divmod(n, self.epoch_length)
            block, inner = divmod(offset, self.block_size)
            labels, block_draws = self._block_plan(epoch, block)
            stop = min(len(labels), inner + start + count - n)
            langs = labels[inner:stop]
            draws = epoch * self.counts[langs] + block_draws[inner:stop]
            for lang, draw in zip(langs.tolist(), draws.tolist()):
                size = int(self.sizes[lang])
                pass_index, k = divmod(draw, size)
                out.append((lang, int(self._language_pass(lang, pass_index)[k])))
            n += stop - inner
        return out

    def __getitem__(self, n: int) -> Sample:
        return self.take(n, 1)[0]


# ---------------------------------------------------------------------- sources

@dataclass
class DataInfo:
    """What the trainer needs to know about the data before building anything."""

    folders: list[Path]
    languages: list[str]
    sizes: dict[str, int]  # all examples per language
    train_ids: list[np.ndarray]  # per language: example ids used for training (sorted)
    eval_ids: list[np.ndarray]  # per language: held-out example ids (sorted)
    tokenizer: dict  # manifest "tokenizer" block (vocab_size, pad_id, cls_id, ...)
    manifest_hash: str  # identity of the whole data set (for checkpoints)

    @property
    def train_sizes(self) -> dict[str, int]:
        return {lang: len(ids) for lang, ids in zip(self.languages, self.train_ids)}

    def weights(self, alpha: float) -> dict[str, float]:
        return blend_weights(self.train_sizes, alpha)


def split_ids(group_offsets: np.ndarray, eval_entities: int, seed: int,
              lang: str) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, eval ids) of one language, both sorted int64; disjoint, union = all examples.
    `group_offsets` [G + 1]: entity g owns examples [off[g], off[g + 1]); the first
    `eval_entities` entities of a permutation seeded by (seed, language) are held out whole."""
    offsets = np.asarray(group_offsets, dtype=np.int64)
    n_groups = len(offsets) - 1
    if eval_entities >= n_groups:
        raise ValueError(f"{lang}: {n_groups} entities, not more than eval_entities="
                         f"{eval_entities}")
    held = np.zeros(n_groups, dtype=bool)
    held[np.random.default_rng([seed, _lang_seed(lang), 0xE7A1]).permutation(n_groups)
         [:eval_entities]] = True
    per_example = np.repeat(held, np.diff(offsets))  # [n] True = held out
    return np.flatnonzero(~per_example), np.flatnonzero(per_example)


def data_info(cfg: RunConfig) -> DataInfo:
    """Read the manifests and indexes named by `cfg.data` (run `config.validate` first)."""
    manifests = read_manifests(cfg.data)
    folders = [folder for folder, _ in manifests]
    languages = [manifest["lang"] for _, manifest in manifests]
    sizes, train_ids, eval_ids = {}, [], []
    for folder, lang in zip(folders, languages):
        dataset = MRCDataset(folder)
        sizes[lang] = len(dataset)
        offsets = dataset.group_offsets()
        if offsets is None:
            raise ValueError(f"{folder}: no entity groups (mrc.groups.npy); rebuild it with this "
                             "version of data_prep")
        train, held_out = split_ids(offsets, cfg.data.eval_entities, cfg.data.seed, lang)
        train_ids.append(train)
        eval_ids.append(held_out)
    digest = hashlib.sha256()
    for lang, folder in sorted(zip(languages, folders)):
        digest.update(f"{lang}:{manifest_hash(folder)};".encode())
    return DataInfo(folders, languages, sizes, train_ids, eval_ids, manifests[0][1]["tokenizer"],
                    digest.hexdigest())


class MRCSource(Dataset):
    """Map-style dataset over all languages; item (language id, example id) →
    (language id, MRCExample). Indexes open lazily (in each loader worker)."""

    def __init__(self, folders: Sequence[Path]):
        self.folders = list(folders)
        self._datasets: list[MRCDataset] | None = None

    def _open(self) -> list[MRCDataset]:
        if self._datasets is None:
            self._datasets = [MRCDataset(folder) for folder in self.folders]
        return self._datasets

    def __getitem__(self, item: Sample) -> tuple[int, MRCExample]:
        lang, index = item
        return lang, self._open()[lang][int(index)]

    def __len__(self) -> int:
        return sum(len(ds) for ds in self._open())


# ---------------------------------------------------------------------- collation

class MRCCollator:
    """List of (language id, MRCExample) → padded micro-batch:

    input_ids [B, T] long (T = longest sequence in this micro-batch, padded with pad_id),
    attention_mask [B, T] long, context_start [B], context_end [B] (exclusive) long,
    answer_spans [N, 3] long rows (batch, start, end) inclusive, answer_counts [B] long,
    lang_id [B] long.
    """

    def __init__(self, pad_id: int, max_seq_len: int):
        self.pad_id = int(pad_id)
        self.max_seq_len = int(max_seq_len)

    def __call__(self, items: Sequence[tuple[int, MRCExample]]) -> dict[str, Tensor]:
        if not items:
            raise ValueError("empty micro-batch")
        length = max(len(ex.input_ids) for _, ex in items)
        if length > self.max_seq_len:
            raise ValueError(f"an example has {length} tokens > data.max_seq_len="
                             f"{self.max_seq_len}; rebuild the data or raise data.max_seq_len")
        size = len(items)
        input_ids = torch.full((size, length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros(size, length, dtype=torch.long)
        context = torch.zeros(size, 2, dtype=torch.long)
        counts = torch.zeros(size, dtype=torch.long)
        spans = []
        for row, (_, ex) in enumerate(items):
            t = len(ex.input_ids)
            input_ids[row, :t] = torch.from_numpy(np.asarray(ex.input_ids, dtype=np.int64))
            attention_mask[row, :t] = 1
            if not 0 < ex.context_start <= ex.context_end <= t:
                raise ValueError(f"bad context [{ex.context_start}, {ex.context_end}) in an "
                                 f"example of {t} tokens")
            context[row] = torch.tensor([ex.context_start, ex.context_end])
            answers = np.asarray(ex.answer_spans, dtype=np.int64).reshape(-1, 2)
            if len(answers) and not (np.all(answers[:, 0] >= ex.context_start)
                                     and np.all(answers[:, 1] < ex.context_end)
                                     and np.all(answers[:, 0] <= answers[:, 1])):
                raise ValueError(f"gold spans {answers.tolist()} outside the context "
                                 f"[{ex.context_start}, {ex.context_end})")
            counts[row] = len(answers)
            if len(answers):
                spans.append(np.concatenate([np.full((len(answers), 1), row), answers], axis=1))
        answer_spans = torch.from_numpy(np.concatenate(spans)) if spans else \
            torch.zeros(0, 3, dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "context_start": context[:, 0].contiguous(),
            "context_end": context[:, 1].contiguous(),
            "answer_spans": answer_spans.long(),
            "answer_counts": counts,
            "lang_id": torch.tensor([lang for lang, _ in items], dtype=torch.long),
        }


# ---------------------------------------------------------------------- per-rank streams

def rank_positions(consumed_samples: int, micro_batch_size: int, rank: int,
                   world_size: int) -> Iterator[range]:
    """Global sample positions of this rank's micro-batches from `consumed_samples` on
    (infinite). Any count works, so a run may resume with another batch shape."""
    chunk = micro_batch_size * world_size
    if consumed_samples < 0:
        raise ValueError(f"consumed_samples={consumed_samples} is negative")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    start = consumed_samples + rank * micro_batch_size
    while True:
        yield range(start, start + micro_batch_size)
        start += chunk


class _TrainBatchIndices:
    """Batch sampler for DataLoader: lists of (language id, example id), infinite."""

    def __init__(self, sampler: BlendedSampler, train_ids: list[np.ndarray], positions):
        self.sampler, self.train_ids, self.positions = sampler, train_ids, positions

    def __iter__(self) -> Iterator[list[Sample]]:
        for span in self.positions:
            yield [(lang, int(self.train_ids[lang][k]))
                   for lang, k in self.sampler.take(span.start, len(span))]


def _loader(cfg: RunConfig, info: DataInfo, batch_indices) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(MRCSource(info.folders), batch_sampler=batch_indices, num_workers=workers,
                      collate_fn=MRCCollator(info.tokenizer.get("pad_id", 1), cfg.data.max_seq_len),
                      prefetch_factor=2 if workers else None)


def train_sampler(cfg: RunConfig, info: DataInfo) -> BlendedSampler:
    """The global order of a run (over training ids, weights from `data.alpha`)."""
    return BlendedSampler(info.train_sizes, cfg.data.alpha, cfg.data.seed)


def train_batches(cfg: RunConfig, rank: int, world_size: int, consumed_samples: int,
                  info: DataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's training micro-batches in order, starting exactly at `consumed_samples`
    (infinite; loaded by `data.num_workers` background workers). One optimizer step consumes
    global_batch_size samples = micro × world × accumulation micro-batches of all ranks."""
    info = info or data_info(cfg)
    sampler = train_sampler(cfg, info)
    positions = rank_positions(consumed_samples, cfg.train.micro_batch_size, rank, world_size)
    yield from _loader(cfg, info, _TrainBatchIndices(sampler, info.train_ids, positions))


def eval_samples(info: DataInfo, world_size: int, seed: int) -> list[Sample]:
    """All held-out samples in an order shuffled once by `seed` (so that an evaluation cut to
    `train.eval_batches` still sees every language and many entities, not the first entities of
    the first language), truncated to a multiple of world_size (every rank must run the same
    number of forward passes under ZeRO-3)."""
    samples = [(lang, int(i)) for lang, ids in enumerate(info.eval_ids) for i in ids]
    order = np.random.default_rng([seed, 0xE7A2]).permutation(len(samples))
    samples = [samples[k] for k in order]
    return samples[: len(samples) - len(samples) % world_size]


def eval_batches(cfg: RunConfig, rank: int, world_size: int,
                 info: DataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's held-out micro-batches (rank r takes samples r, r + W, …); every rank yields
    the same number of batches. Finite; deterministic; disjoint from training ids."""
    info = info or data_info(cfg)
    mine = eval_samples(info, world_size, cfg.data.seed)[rank::world_size]
    micro = cfg.train.micro_batch_size
    batches = [mine[i:i + micro] for i in range(0, len(mine), micro)]
    if batches:
        yield from _loader(cfg, info, batches)
