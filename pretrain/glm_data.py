"""mGLM data pipeline: `corpus` folders built with a GLM tokenizer (one per language) → packed
windows → α-blended global order by text bytes → per-rank blank-infilling micro-batches.

* Documents. A corpus document (its segments, concatenated) is one GLM document.
* Held-out split (`pretrain.data.split_ids`, seeded by (data.seed, language)):
  `mglm.eval_documents` whole documents per language.
* Packing (spec mGLM.md A1.0, `sample_across_doc`): per language, the training documents in an
  order seeded by (data.seed, language) form one stream `[CLS] d1 [eos] [CLS] d2 [eos] …`;
  window k is stream tokens [k·(L - 1), (k + 1)·(L - 1)) with L = data.max_seq_len, prefixed by
  `[CLS]` unless it already starts with one. So a window has at most L tokens, starts with
  [CLS], and every stream token is in exactly one window: nothing is lost or repeated (the
  reference draws random cuts instead, so some text is never seen and some twice).
* Blend (A1.11): q_i ∝ (bytes_i / Σ bytes)^α over each language's UTF-8 text bytes (the
  manifest's `text_bytes`), as the reference computes it on its raw-text shards; the windows
  are the samples of `pretrain.data.BlendedSampler`, which reshuffles a language's windows on
  every pass over them. Global sample n is a pure function of (seed, data, α, n): a run
  resumes at any consumed-sample count without replaying data.
* Ranks: as mPMR (`pretrain.data.rank_positions`): micro-batch = consecutive global samples,
  rank r takes the r-th slice of each chunk of micro × world samples.
* Blank infilling (`pretrain.glm_blank.BlankCollator`): seeded by (data.seed, sample number),
  so the same samples get the same blanks for any world size, worker count or resume point.

Never imports DeepSpeed or torch.distributed: ranks and world size are plain arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from data_prep.format import FORMAT_VERSION, CorpusDataset, manifest_hash, read_manifest
from pretrain.config import ConfigError, RunConfig, check_same_tokenizer, data_folders
from pretrain.data import BlendedSampler, _lang_seed, blend_weights, rank_positions, split_ids
from pretrain.glm_blank import BlankCollator, BlankConfig, GlmIds
from pretrain.veco_data import index_lengths

TRAIN, EVAL = 0, 1
# (split, language id, window number, sample number): sample number seeds the blanks
Sample = tuple[int, int, int, int]
GLM_KEYS = ("cls_id", "eos_id", "pad_id", "mask_id", "smask_id", "gmask_id", "sop_id",
            "eop_id", "dblock_id", "padded_vocab_size", "sentence_end_ids")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# ---------------------------------------------------------------------- packing

@dataclass
class Packing:
    """The windows of one language's stream of documents `order` (document ids)."""

    order: np.ndarray  # document ids in stream order
    starts: np.ndarray  # [len(order) + 1] stream offset of each document's [CLS]; last = total
    window: int  # stream tokens per window = max_seq_len - 1

    @classmethod
    def build(cls, order: np.ndarray, doc_lengths: np.ndarray, max_seq_len: int) -> "Packing":
        sizes = doc_lengths[order] + 2  # [CLS] d [eos]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return cls(np.asarray(order, dtype=np.int64), starts, max_seq_len - 1)

    def __len__(self) -> int:
        return -(-int(self.starts[-1]) // self.window)

    def pieces(self, k: int) -> list[tuple[int, int, int]]:
        """Window k as (document id, first, stop) ranges over `[CLS] d [eos]` of each
        document it touches (0 = the [CLS], len(d) + 1 = the eos)."""
        if not 0 <= k < len(self):
            raise IndexError(f"window {k} outside 0..{len(self) - 1}")
        a = k * self.window
        b = min(a + self.window, int(self.starts[-1]))
        i = int(np.searchsorted(self.starts, a, side="right")) - 1
        out = []
        while i < len(self.order) and self.starts[i] < b:
            lo, hi = max(a, int(self.starts[i])), min(b, int(self.starts[i + 1]))
            out.append((int(self.order[i]), lo - int(self.starts[i]), hi - int(self.starts[i])))
            i += 1
        return out


def window_tokens(pieces: list[tuple[int, int, int]], read_document, cls_id: int,
                  eos_id: int) -> np.ndarray:
    """The window's ids: the pieces of `[CLS] d [eos]`, with [CLS] in front unless the window
    already starts with it. `read_document(d, start, stop)` returns ids start … stop - 1 of
    document d (so a long document is never read whole for one window)."""
    parts = [] if pieces and pieces[0][1] == 0 else [np.array([cls_id], dtype=np.int64)]
    for doc, first, stop in pieces:
        body = read_document(doc, max(first - 1, 0), stop - 1)  # stream offset 0 = [CLS]
        length_with_eos = stop - max(first, 1)  # body tokens + the eos if it is in the piece
        parts.append(np.concatenate([[cls_id]] * (first == 0) + [body]
                                    + [[eos_id]] * (len(body) < length_with_eos)))
    return np.concatenate(parts).astype(np.int64)


# ---------------------------------------------------------------------- info

@dataclass
class GlmDataInfo:
    """What the mGLM objective needs to know about its data before building anything."""

    folders: list[Path]
    languages: list[str]
    text_bytes: dict[str, int]  # per language, UTF-8 bytes of its text (blend weights)
    train: list[Packing]  # per language
    held_out: list[Packing]  # per language (mglm.eval_documents documents)
    tokenizer: dict  # manifest "tokenizer" block (GLM layout)
    manifest_hash: str  # identity of the whole data set (for checkpoints)
    data_hashes: dict[str, str]  # language → manifest_hash(folder)

    @property
    def train_windows(self) -> dict[str, int]:
        return {lang: len(p) for lang, p in zip(self.languages, self.train)}

    def weights(self, alpha: float) -> dict[str, float]:
        return blend_weights(self.text_bytes, alpha)

    def describe(self, alpha: float) -> str:
        """`de 10,902 B (54.0%) → 51.2%, 67 windows | …` (text bytes → blend weight)."""
        total, weights = sum(self.text_bytes.values()) or 1, self.weights(alpha)
        return f"mGLM text bytes → blend weight (alpha={alpha}): " + " | ".join(
            f"{lang} {self.text_bytes[lang]:,} B ({100 * self.text_bytes[lang] / total:.1f}%) → "
            f"{100 * weights[lang]:.1f}%, {n} windows" for lang, n in self.train_windows.items())


def _manifests(cfg: RunConfig) -> list[tuple[Path, dict]]:
    found = [(f, read_manifest(f)) for f in data_folders(cfg.data)]
    seen: dict[str, Path] = {}
    for folder, manifest in found:
        _check(manifest.get("kind") == "corpus",
               f"data.paths: {folder} holds '{manifest.get('kind')}' data; mGLM reads 'corpus' "
               f"folders (python -m data_prep corpus --tokenizer GLM_TOKENIZER)")
        _check(manifest.get("format_version") == FORMAT_VERSION,
               f"data.paths: {folder} has format_version {manifest.get('format_version')}, this "
               f"code reads {FORMAT_VERSION}; rebuild it with `python -m data_prep corpus`")
        tokenizer = manifest.get("tokenizer", {})
        _check(tokenizer.get("layout") == "glm" and all(k in tokenizer for k in GLM_KEYS),
               f"data.paths: {folder} was tokenized with {tokenizer.get('name_or_path')}, not a "
               f"GLM tokenizer; train one with `python -m data_prep train-tokenizer --layout glm`"
               f" and rebuild the folder with it")
        _check("text_bytes" in manifest,
               f"data.paths: {folder}/manifest.json has no text_bytes (mGLM blends languages by "
               f"bytes); rebuild it with this version of `python -m data_prep corpus`")
        lang = manifest["lang"]
        _check(lang not in seen, f"data.paths: {folder} and {seen.get(lang)} are both {lang!r}; "
               f"keep one folder per language (merge their inputs and rebuild)")
        seen[lang] = folder
    check_same_tokenizer(found, "data.paths: ")
    return found


def glm_data_info(cfg: RunConfig) -> GlmDataInfo:
    """Read the manifests and indexes named by `cfg.data`; problems are ConfigErrors."""
    found = _manifests(cfg)
    seed, count, length = cfg.data.seed, cfg.mglm.eval_documents, cfg.data.max_seq_len
    train, held_out = [], []
    for folder, manifest in found:
        lang = manifest["lang"]
        doc_index, seq_lengths = index_lengths(CorpusDataset(folder))
        n_docs = len(doc_index) - 1
        _check(n_docs > count, f"data.paths: {folder} ({lang}) has {n_docs} documents, not more "
               f"than mglm.eval_documents={count}; lower mglm.eval_documents or add text")
        cum = np.concatenate([[0], np.cumsum(seq_lengths)])
        doc_lengths = cum[doc_index[1:]] - cum[doc_index[:-1]]
        train_ids, eval_ids = split_ids(np.arange(n_docs + 1), count, seed, lang)
        order = np.random.default_rng([seed, _lang_seed(lang), 0x61A]).permutation(train_ids)
        train.append(Packing.build(order, doc_lengths, length))
        held_out.append(Packing.build(eval_ids, doc_lengths, length))
    hashes = {manifest["lang"]: manifest_hash(folder) for folder, manifest in found}
    digest = hashlib.sha256()
    for lang in sorted(hashes):
        digest.update(f"{lang}:{hashes[lang]};".encode())
    return GlmDataInfo([f for f, _ in found], [m["lang"] for _, m in found],
                       {m["lang"]: int(m["text_bytes"]) for _, m in found}, train, held_out,
                       found[0][1]["tokenizer"], digest.hexdigest(), hashes)


def check_glm_data(cfg: RunConfig) -> None:
    """Everything about mGLM's data that can be checked before a worker starts."""
    _check(cfg.data.seed >= 0, f"data.seed must be >= 0 (it seeds numpy generators), got "
           f"{cfg.data.seed}")
    info = glm_data_info(cfg)
    _check(sum(info.text_bytes.values()) > 0, "data.paths: every corpus folder is empty")
    vocab = int(info.tokenizer["padded_vocab_size"])
    if cfg.model.init_from == "tiny":
        return
    import json

    hf = json.loads((Path(cfg.model.init_from) / "config.json").read_text(encoding="utf-8"))
    _check(int(hf.get("vocab_size", -1)) == vocab,
           f"model.init_from: {cfg.model.init_from} has vocab_size {hf.get('vocab_size')}, the "
           f"data's GLM tokenizer {vocab} (padded); use the tokenizer the model was trained with")


# ---------------------------------------------------------------------- loading

def blank_config(cfg: RunConfig) -> BlankConfig:
    """The collator's settings: `cfg.mglm`'s fields of the same names, and data.max_seq_len."""
    names = {f.name for f in fields(BlankConfig)} & set(type(cfg.mglm).__dataclass_fields__)
    return BlankConfig(**{n: getattr(cfg.mglm, n) for n in names},
                       max_seq_len=cfg.data.max_seq_len)


def sentence_end_table(tokenizer: dict) -> np.ndarray:
    table = np.zeros(int(tokenizer["padded_vocab_size"]), dtype=bool)
    table[np.asarray(tokenizer["sentence_end_ids"], dtype=np.int64)] = True
    return table


class GlmSource(Dataset):
    """Map-style dataset; item `Sample` → (sample number, window ids int64). Indexes open lazily
    (in each loader worker)."""

    def __init__(self, info: GlmDataInfo):
        self.folders = list(info.folders)
        self.packings = (info.train, info.held_out)
        self.cls, self.eos = int(info.tokenizer["cls_id"]), int(info.tokenizer["eos_id"])
        self._datasets: list | None = None

    def _document(self, lang: int, doc: int, start: int, stop: int) -> np.ndarray:
        """Ids start … stop - 1 of document `doc` (clipped to its end): only the segments that
        overlap the range are read."""
        if self._datasets is None:
            self._datasets = [CorpusDataset(f).indexed for f in self.folders]
        indexed = self._datasets[lang]
        first, last = indexed.document_indices[doc], indexed.document_indices[doc + 1]
        ends = np.cumsum(indexed.sequence_lengths[first:last])
        out, begin = [], 0
        for segment, end in zip(range(first, last), ends.tolist()):
            if end > start and begin < stop:
                ids = np.asarray(indexed[int(segment)], dtype=np.int64)
                out.append(ids[max(start - begin, 0):stop - begin])
            begin = end
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def __getitem__(self, sample: Sample) -> tuple[int, np.ndarray]:
        split, lang, k, n = sample
        pieces = self.packings[split][lang].pieces(k)
        return n, window_tokens(pieces, lambda d, a, b: self._document(lang, d, a, b), self.cls,
                               self.eos)

    def __len__(self) -> int:
        return sum(len(p) for packings in self.packings for p in packings)


class GlmCollator:
    """(sample number, window) items → a blank-infilling batch (`glm_blank.BlankCollator`).
    Training draws each micro-batch's mode (A1.1); evaluation (`cycle_modes`) gives held-out
    micro-batch j mode j mod 3, so every mode has a held-out loss."""

    def __init__(self, cfg: RunConfig, tokenizer: dict, seed: int, cycle_modes: bool = False):
        self.blank = BlankCollator(GlmIds.from_tokenizer(tokenizer), blank_config(cfg), seed,
                                   sentence_end_table(tokenizer))
        self.micro = cfg.train.micro_batch_size if cycle_modes else 0

    def __call__(self, items: Sequence[tuple[int, np.ndarray]]) -> dict[str, Tensor]:
        if not items:
            raise ValueError("empty micro-batch")
        first = items[0][0]
        mode = (first // self.micro) % 3 if self.micro else None
        return self.blank([w for _, w in items], [n for n, _ in items], mode)


def _loader(cfg: RunConfig, info: GlmDataInfo, batch_indices, split: int) -> DataLoader:
    workers = cfg.data.num_workers
    seed = int(np.random.SeedSequence([cfg.data.seed, split, 0x61B]).generate_state(1)[0])
    return DataLoader(GlmSource(info), batch_sampler=batch_indices, num_workers=workers,
                      collate_fn=GlmCollator(cfg, info.tokenizer, seed, split == EVAL),
                      prefetch_factor=2 if workers else None)


def train_sampler(cfg: RunConfig, info: GlmDataInfo) -> BlendedSampler:
    """Global order over (language, window), blend weights by text bytes (A1.11)."""
    return BlendedSampler(info.train_windows, cfg.data.alpha, cfg.data.seed,
                          weight_sizes=info.text_bytes)


class _TrainBatchIndices:
    def __init__(self, sampler: BlendedSampler, positions):
        self.sampler, self.positions = sampler, positions

    def __iter__(self) -> Iterator[list[Sample]]:
        for span in self.positions:
            yield [(TRAIN, lang, k, n) for n, (lang, k)
                   in zip(span, self.sampler.take(span.start, len(span)))]


def train_batches(cfg: RunConfig, rank: int, world_size: int, consumed_samples: int,
                  info: GlmDataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's training micro-batches in order from `consumed_samples` on (infinite)."""
    info = info or glm_data_info(cfg)
    positions = rank_positions(consumed_samples, cfg.train.micro_batch_size, rank, world_size)
    indices = _TrainBatchIndices(train_sampler(cfg, info), positions)
    yield from _loader(cfg, info, indices, TRAIN)


def eval_samples(cfg: RunConfig, info: GlmDataInfo, world_size: int) -> list[Sample]:
    """Every held-out window, shuffled once by data.seed (an evaluation cut to
    train.eval_batches still sees every language), truncated to a multiple of world_size; the
    blanks are seeded by the position in that list, so they do not depend on the world size."""
    items = [(lang, k) for lang, p in enumerate(info.held_out) for k in range(len(p))]
    order = np.random.default_rng([cfg.data.seed, 0xE7A3]).permutation(len(items))
    samples = [(EVAL, *items[k], n) for n, k in enumerate(order)]
    return samples[: len(samples) - len(samples) % world_size]


def eval_batches(cfg: RunConfig, rank: int, world_size: int,
                 info: GlmDataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's held-out micro-batches (rank r takes samples r, r + W, …); finite, the same
    blanks at every evaluation; every rank yields the same number of batches."""
    info = info or glm_data_info(cfg)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    mine = eval_samples(cfg, info, world_size)[rank::world_size]
    micro = cfg.train.micro_batch_size
    batches = [mine[i:i + micro] for i in range(0, len(mine), micro)]
    if batches:
        yield from _loader(cfg, info, batches, EVAL)
