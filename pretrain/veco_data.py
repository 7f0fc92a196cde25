"""VECO data pipeline: `corpus` folders (one per language) and `parallel` folders (one per
language pair) → two α-blended sample streams → per-rank micro-batches of masked (x, y) pairs.

* Samples. Monolingual: two adjacent segments (j, j + 1) of one document (S2:142, 305); the
  pairs of a language are every j whose successor is in the same document (`adjacent_pairs`).
  Bilingual: the (source, target) sentences of one parallel pair.
* Held-out split (`pretrain.data.split_ids`, seeded by (data.seed, name)): per language,
  `veco.eval_documents` whole documents with all their pairs; per language pair,
  `veco.eval_pairs` pairs.
* Schedule (`step_kind`): optimizer step s (1-based) is "mono" or "bilingual"; the samples each
  stream consumed before step s are a pure function of s (`consumed_before`): G per mono step,
  G × bilingual_batch_ratio per bilingual step (G = train.global_batch_size).
* Order: each stream is its own `pretrain.data.BlendedSampler` (α = data.alpha over the
  languages / pairs, by training pairs; seed from (data.seed, stream)), so any step resumes
  without replay. Inside a step the stream's global batch is cut like `pretrain.data`: each
  chunk of micro × world consecutive samples is one micro-step, rank r taking the r-th slice
  (micro = train.micro_batch_size, × bilingual_batch_ratio on bilingual steps).
* Masking (`mask_tokens`): fairseq's MaskTokensDataset rules, per sequence, drawn from
  `np.random.default_rng([data.seed, stream, sample number, sequence])` — the same inputs
  for any world size, worker count or resume point; evaluation uses its own streams.
* Lengths: data longer than data.max_seq_len (mono) / veco.bilingual_max_len (per side) is a
  `ConfigError` in `check_veco_data` (exact lengths from the .idx) and a ValueError in the
  collator — never truncated.

Never imports DeepSpeed or torch.distributed: ranks and world size are plain arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice, zip_longest
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from data_prep.format import (FORMAT_VERSION, PREFIXES, CorpusDataset, ParallelDataset,
                              manifest_hash, read_manifest)
from pretrain.config import ConfigError, DataConfig, RunConfig, check_same_tokenizer, data_folders
from pretrain.data import BlendedSampler, blend_weights, format_weights, rank_positions, split_ids

MONO, BILINGUAL = 0, 1
KINDS = ("mono", "bilingual")  # index = the `kind` value of a batch
SCHEDULES = ("alternate", "mono", "bilingual")
IGNORE = -100  # label of positions without an MLM target
# (kind, language / pair id, item, mask stream, sample number in that stream); item = j of the
# pair (j, j + 1) for mono, the parallel document for bilingual; stream = kind (+ 2 in eval)
Sample = tuple[int, int, int, int, int]


# ---------------------------------------------------------------------- folders

def _folders(paths: list[str], key: str) -> list[Path]:
    if not paths:
        return []
    try:
        return data_folders(DataConfig(paths=list(paths)))
    except ConfigError as err:
        raise ConfigError(str(err).replace("data.paths", key)) from None


_WHERE = {"corpus": ("data.paths", "python -m data_prep corpus"),
          "parallel": ("data.parallel_paths", "python -m data_prep parallel")}


def _check_kind(kind: str, folder: Path, manifest: dict) -> None:
    key, command = _WHERE[kind]
    if manifest.get("kind") != kind:
        raise ConfigError(f"{key}: {folder} holds '{manifest.get('kind')}' data; VECO reads "
                          f"'corpus' folders from data.paths and 'parallel' folders from "
                          f"data.parallel_paths — move it to the right list, or build a '{kind}' "
                          f"folder with `{command}`")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{key}: {folder} has format_version {manifest.get('format_version')}, "
                          f"this code reads {FORMAT_VERSION}; rebuild it with `{command}`")
    for field_name in ("lang", "tokenizer"):
        if field_name not in manifest:
            raise ConfigError(f"{key}: {folder}/manifest.json has no '{field_name}'; rebuild it "
                              f"with `{command}`")


def _check_names(kind: str, found: list[tuple[Path, dict]]) -> None:
    """One folder per language (corpus) or language pair (parallel; de-en = en-de, since
    CA-MLM is symmetric in x and y)."""
    what = "language pair" if kind == "parallel" else "language"
    seen: dict = {}
    for folder, manifest in found:
        name = manifest["lang"]
        sides = (manifest.get("src_lang"), manifest.get("tgt_lang"))
        identity = tuple(sorted(sides)) if kind == "parallel" and all(sides) else name
        if identity in seen:
            other, other_name = seen[identity]
            raise ConfigError(f"{_WHERE[kind][0]}: {folder} ({name}) and {other} ({other_name}) "
                              f"are the same {what}; keep one folder per {what} (merge their "
                              f"inputs and rebuild)")
        seen[identity] = (folder, name)


def _check_tokenizer(found: list[tuple[Path, dict]]) -> None:
    """One tokenizer (fingerprint) built every folder, and it has the ids masking needs."""
    check_same_tokenizer(found)
    first_folder, first = found[0]
    tokenizer = first["tokenizer"]
    for id_name in ("mask_id", "pad_id", "cls_id", "sep_id", "vocab_size"):
        if tokenizer.get(id_name) is None:
            raise ConfigError(f"{first_folder}: its tokenizer ({tokenizer.get('name_or_path')}) "
                              f"has no {id_name.replace('_id', ' token')}, which VECO's masked "
                              f"LM needs; train one with `python -m data_prep train-tokenizer` "
                              f"(XLM-R specials, <mask> last) and rebuild the data")


def _manifests(cfg: RunConfig) -> tuple[list[tuple[Path, dict]], list[tuple[Path, dict]]]:
    """(folder, manifest) of the corpus and of the parallel folders, checked: kinds, format
    versions, one folder per language / pair, one tokenizer with a mask token."""
    corpus = [(f, read_manifest(f)) for f in _folders(cfg.data.paths, "data.paths")]
    parallel = [(f, read_manifest(f))
                for f in _folders(cfg.data.parallel_paths, "data.parallel_paths")]
    if not corpus and not parallel:
        raise ConfigError("VECO has no data: set data.paths to corpus folders (python -m data_prep "
                          "corpus) and/or data.parallel_paths to parallel folders (python -m "
                          "data_prep parallel)")
    for kind, found in (("corpus", corpus), ("parallel", parallel)):
        for folder, manifest in found:
            _check_kind(kind, folder, manifest)
        _check_names(kind, found)
    _check_tokenizer(corpus + parallel)
    return corpus, parallel


def index_lengths(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(document_indices [D + 1], sequence_lengths [S]) of a built folder, empty ones included
    (numpy cannot memory-map an empty .bin). Copies: views of the index die with `dataset`."""
    if (dataset.folder / f"{PREFIXES[dataset.kind]}.bin").stat().st_size == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return (np.array(dataset.indexed.document_indices, dtype=np.int64),
            np.array(dataset.indexed.sequence_lengths, dtype=np.int64))


def adjacent_pairs(document_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All monolingual samples of one corpus, vectorised.

    Returns (pair_starts [P] sorted: sequence index j of every pair (j, j + 1) whose two
    segments belong to one document; document_offsets [D' + 1] int64: document d' of the D'
    documents with a pair owns pair_starts[off[d']:off[d' + 1]]). One-segment documents give no
    pair."""
    doc = np.asarray(document_indices, dtype=np.int64)
    segments = np.diff(doc)
    n_sequences = int(doc[-1])
    starts = np.ones(n_sequences, dtype=bool)
    starts[doc[1:][segments > 0] - 1] = False  # a document's last segment starts no pair
    dtype = np.int32 if n_sequences < 2**31 else np.int64
    per_doc = segments[segments > 1] - 1
    offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    return np.flatnonzero(starts).astype(dtype), offsets


# ---------------------------------------------------------------------- info

@dataclass
class VecoDataInfo:
    """What the VECO objective needs to know about its data before building anything."""

    corpus_folders: list[Path]
    parallel_folders: list[Path]
    languages: list[str]  # per corpus folder; `lang_id` of mono samples
    pairs: list[str]  # per parallel folder ("de-en"); `lang_id` of bilingual samples
    mono_pairs: list[np.ndarray]  # per language: j of every adjacent pair (j, j + 1), sorted
    mono_train_ids: list[np.ndarray]  # per language: the training pairs' j (sorted)
    mono_eval_ids: list[np.ndarray]  # per language: held-out pairs' j (whole documents)
    bilingual_train_ids: list[np.ndarray]  # per pair: training document ids (sorted)
    bilingual_eval_ids: list[np.ndarray]  # per pair: held-out document ids
    tokenizer: dict  # manifest "tokenizer" block (vocab_size, pad_id, cls_id, sep_id, mask_id…)
    manifest_hash: str  # identity of the whole data set (for checkpoints)
    data_hashes: dict[str, str]  # language or pair → manifest_hash(folder)

    @property
    def folders(self) -> list[Path]:
        return self.corpus_folders + self.parallel_folders

    @property
    def mono_train_sizes(self) -> dict[str, int]:
        return {lang: len(ids) for lang, ids in zip(self.languages, self.mono_train_ids)}

    @property
    def bilingual_train_sizes(self) -> dict[str, int]:
        return {pair: len(ids) for pair, ids in zip(self.pairs, self.bilingual_train_ids)}

    def describe(self, alpha: float) -> str:
        """The start-up log line: training pairs and blend weight per language / pair."""
        parts = []
        for what, sizes in (("mono", self.mono_train_sizes),
                            ("bilingual", self.bilingual_train_sizes)):
            if sizes:
                parts.append(f"{what} (train pairs → blend weight, alpha={alpha}): "
                             f"{format_weights(sizes, blend_weights(sizes, alpha))}")
        return "; ".join(parts)


def _held_out(offsets: np.ndarray, count: int, seed: int, name: str, message: str,
              empty: str) -> tuple[np.ndarray, np.ndarray]:
    groups = len(offsets) - 1
    if groups == 0:
        raise ConfigError(empty)
    if count >= groups:
        raise ConfigError(message.format(groups=groups))
    return split_ids(offsets, count, seed, name)


def veco_data_info(cfg: RunConfig) -> VecoDataInfo:
    """Read the manifests and indexes named by `cfg.data` (run `check_veco_data` first; the
    problems found here are ConfigErrors too)."""
    corpus, parallel = _manifests(cfg)
    v, seed = cfg.veco, cfg.data.seed
    mono_pairs, mono_train, mono_eval = [], [], []
    for folder, manifest in corpus:
        lang = manifest["lang"]
        starts, offsets = adjacent_pairs(index_lengths(CorpusDataset(folder))[0])
        train, held = _held_out(
            offsets, v.eval_documents, seed, lang,
            f"data.paths: {folder} ({lang}) has {{groups}} documents with adjacent segments, not "
            f"more than veco.eval_documents={v.eval_documents}; lower veco.eval_documents",
            f"data.paths: {folder} ({lang}) has no document with two segments, so no adjacent "
            f"pairs (x, y); rebuild it with a smaller --max-seq-len (segments are cut at "
            f"max_seq_len - 2 ids) or from longer documents, or drop it")
        mono_pairs.append(starts)
        mono_train.append(starts[train])
        mono_eval.append(starts[held])
    bilingual_train, bilingual_eval = [], []
    for folder, manifest in parallel:
        pair = manifest["lang"]
        n = len(ParallelDataset(folder))
        train, held = _held_out(
            np.arange(n + 1, dtype=np.int64), v.eval_pairs, seed, pair,
            f"data.parallel_paths: {folder} ({pair}) has {{groups}} pairs, not more than "
            f"veco.eval_pairs={v.eval_pairs}; lower veco.eval_pairs",
            f"data.parallel_paths: {folder} ({pair}) holds no sentence pairs; rebuild it from "
            f"non-empty line-aligned files or drop it")
        bilingual_train.append(train)
        bilingual_eval.append(held)
    hashes = {manifest["lang"]: manifest_hash(folder) for folder, manifest in corpus + parallel}
    digest = hashlib.sha256()
    for kind, items in (("corpus", corpus), ("parallel", parallel)):
        for name in sorted(manifest["lang"] for _, manifest in items):
            digest.update(f"{kind}/{name}:{hashes[name]};".encode())
    return VecoDataInfo(
        [f for f, _ in corpus], [f for f, _ in parallel], [m["lang"] for _, m in corpus],
        [m["lang"] for _, m in parallel], mono_pairs, mono_train, mono_eval, bilingual_train,
        bilingual_eval, (corpus or parallel)[0][1]["tokenizer"], digest.hexdigest(), hashes)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_veco_data(cfg: RunConfig) -> None:
    """Everything about VECO's data and masking settings that can be checked before a worker
    starts; raises `ConfigError` naming the folder or key and what to do. Opens the indexes
    (exact lengths from the .idx)."""
    v, d = cfg.veco, cfg.data
    _check(v.schedule in SCHEDULES,
           f"veco.schedule must be one of {', '.join(SCHEDULES)}, got {v.schedule!r}")
    for name in ("mono_mask_prob", "bilingual_mask_prob"):
        value = getattr(v, name)
        _check(0 < value < 1, f"veco.{name} must be in (0, 1) (fairseq MaskTokensDataset), got "
               f"{value}")
    for name in ("leave_unmasked_prob", "random_token_prob"):
        value = getattr(v, name)
        _check(0 <= value <= 1, f"veco.{name} must be in [0, 1], got {value}")
    _check(v.leave_unmasked_prob + v.random_token_prob <= 1,
           f"veco.leave_unmasked_prob + veco.random_token_prob = "
           f"{v.leave_unmasked_prob + v.random_token_prob} > 1: they are shares of the masked "
           f"positions")
    _check(v.bilingual_batch_ratio >= 1,
           f"veco.bilingual_batch_ratio must be >= 1, got {v.bilingual_batch_ratio}")
    _check(v.bilingual_max_len >= 3,
           f"veco.bilingual_max_len must be >= 3 (<s> + 1 token + </s>), got {v.bilingual_max_len}")
    _check(v.eval_documents >= 0 and v.eval_pairs >= 0,
           "veco.eval_documents and veco.eval_pairs must be >= 0")
    _check(d.seed >= 0, f"data.seed must be >= 0 (it seeds numpy generators), got {d.seed}")
    corpus, parallel = _manifests(cfg)
    if v.schedule in ("alternate", "mono"):
        _check(bool(corpus), f"veco.schedule={v.schedule!r} needs monolingual batches but "
               f"data.paths names no corpus folder; add some (python -m data_prep corpus) or "
               f"set veco.schedule=bilingual")
    if v.schedule in ("alternate", "bilingual"):
        _check(bool(parallel), f"veco.schedule={v.schedule!r} needs bilingual batches but "
               f"data.parallel_paths names no parallel folder; add some (python -m data_prep "
               f"parallel) or set veco.schedule=mono")
    for folder, manifest in corpus:
        lengths = index_lengths(CorpusDataset(folder))[1]
        longest = int(lengths.max()) if len(lengths) else 0
        _check(longest + 2 <= d.max_seq_len,
               f"data.paths: {folder} ({manifest['lang']}) holds segments of up to {longest} "
               f"tokens, {longest + 2} with <s> and </s> > data.max_seq_len={d.max_seq_len}; "
               f"raise data.max_seq_len or rebuild it with --max-seq-len {d.max_seq_len}")
    for folder, manifest in parallel:
        lengths = index_lengths(ParallelDataset(folder))[1]
        longest = int(lengths.max()) if len(lengths) else 0
        _check(longest + 2 <= v.bilingual_max_len,
               f"data.parallel_paths: {folder} ({manifest['lang']}) holds sentences of up to "
               f"{longest} tokens, {longest + 2} with <s> and </s> > veco.bilingual_max_len="
               f"{v.bilingual_max_len}; raise veco.bilingual_max_len or rebuild it with "
               f"--max-len {v.bilingual_max_len - 2}")
    veco_data_info(cfg)  # adjacent pairs and held-out counts


def longest_sequence(cfg: RunConfig) -> int:
    """Longest input the model sees (tokens with specials): for its position table."""
    longest = cfg.data.max_seq_len if cfg.veco.schedule != "bilingual" else 0
    if cfg.veco.schedule != "mono":
        longest = max(longest, 2 * cfg.veco.bilingual_max_len if cfg.veco.tlm
                      else cfg.veco.bilingual_max_len)
    return longest


# ---------------------------------------------------------------------- schedule

def step_kind(step: int, cfg: RunConfig) -> str:
    """"mono" or "bilingual": the stream of 1-based optimizer step `step`."""
    if step < 1:
        raise ValueError(f"optimizer steps count from 1, got {step}")
    schedule = cfg.veco.schedule
    if schedule == "alternate":
        return "mono" if step % 2 else "bilingual"
    if schedule in ("mono", "bilingual"):
        return schedule
    raise ValueError(f"veco.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def samples_per_step(kind: str, cfg: RunConfig) -> int:
    """Samples of `kind` one optimizer step consumes over all ranks."""
    ratio = cfg.veco.bilingual_batch_ratio if kind == "bilingual" else 1
    return cfg.train.global_batch_size * ratio


def micro_batch_size(kind: str, cfg: RunConfig) -> int:
    ratio = cfg.veco.bilingual_batch_ratio if kind == "bilingual" else 1
    return cfg.train.micro_batch_size * ratio


def consumed_before(step: int, cfg: RunConfig) -> tuple[int, int]:
    """(mono samples, bilingual samples) consumed by optimizer steps 1 … step - 1."""
    step_kind(step, cfg)  # validates step and schedule
    done = step - 1
    mono_steps = {"alternate": (done + 1) // 2, "mono": done, "bilingual": 0}[cfg.veco.schedule]
    return (mono_steps * samples_per_step("mono", cfg),
            (done - mono_steps) * samples_per_step("bilingual", cfg))


def _stream_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream, 0x7EC0]).generate_state(1, np.uint64)[0])


def stream_sampler(cfg: RunConfig, info: VecoDataInfo, kind: int) -> BlendedSampler:
    """The global order of one training stream: (language / pair id, position in its training
    ids), α-blended by training pairs."""
    sizes = info.mono_train_sizes if kind == MONO else info.bilingual_train_sizes
    return BlendedSampler(sizes, cfg.data.alpha, _stream_seed(cfg.data.seed, kind))


# ---------------------------------------------------------------------- masking

def special_ids(tokenizer: dict) -> np.ndarray:
    """Ids never masked and never drawn as random replacements."""
    keys = ("cls_id", "pad_id", "sep_id", "unk_id", "mask_id")
    return np.array(sorted({int(tokenizer[k]) for k in keys if tokenizer.get(k) is not None}))


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, mask_prob: float,
                leave_unmasked_prob: float, random_token_prob: float, mask_id: int,
                specials: np.ndarray, replacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One sequence → (inputs, labels), both int64 [T]; fairseq's MaskTokensDataset rules
    (fairseq/data/mask_tokens_dataset.py, `__getitem__`): of the n positions whose id is not in
    `specials`, num_mask = int(mask_prob · n + U[0, 1)) are chosen without replacement; of
    those, `leave_unmasked_prob` keep their id, `random_token_prob` get a uniform draw from
    `replacements`, the rest become `mask_id`. labels = the original id at the chosen
    positions, -100 elsewhere."""
    ids = np.asarray(ids, dtype=np.int64)
    candidates = np.flatnonzero(~np.isin(ids, specials))
    num_mask = int(mask_prob * len(candidates) + rng.random())
    chosen = np.sort(candidates[rng.choice(len(candidates), num_mask, replace=False)])
    labels = np.full(len(ids), IGNORE, dtype=np.int64)
    labels[chosen] = ids[chosen]
    share = rng.random(num_mask)
    inputs = ids.copy()
    inputs[chosen[share >= leave_unmasked_prob + random_token_prob]] = mask_id
    swap = chosen[(share >= leave_unmasked_prob) &
                  (share < leave_unmasked_prob + random_token_prob)]
    inputs[swap] = replacements[rng.integers(0, len(replacements), size=len(swap))]
    return inputs, labels


# ---------------------------------------------------------------------- loading

class VecoSource(Dataset):
    """Map-style dataset; item `Sample` → (Sample, x ids, y ids) as int64 copies. Indexes open
    lazily (in each loader worker)."""

    def __init__(self, corpus_folders: Sequence[Path], parallel_folders: Sequence[Path]):
        self.folders = (list(corpus_folders), list(parallel_folders))
        self._datasets: tuple[list, list] | None = None

    def _open(self) -> tuple[list, list]:
        if self._datasets is None:
            self._datasets = ([CorpusDataset(f) for f in self.folders[0]],
                              [ParallelDataset(f) for f in self.folders[1]])
        return self._datasets

    def __getitem__(self, sample: Sample) -> tuple[Sample, np.ndarray, np.ndarray]:
        kind, lang, item = sample[:3]
        if kind == MONO:
            indexed = self._open()[0][lang].indexed
            x, y = indexed[int(item)], indexed[int(item) + 1]
        else:
            x, y = self._open()[1][lang][int(item)]
        # copies: megatron's views die with the memory map (BuiltDataset.sequences)
        return sample, np.array(x, dtype=np.int64), np.array(y, dtype=np.int64)

    def __len__(self) -> int:
        corpus, parallel = self._open()
        return sum(len(d) for d in corpus) + sum(len(d) for d in parallel)


def _pad(rows: list[tuple[np.ndarray, np.ndarray]], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs, labels) rows → ids, attention mask, labels, each long [B, T_longest]."""
    length = max(len(inputs) for inputs, _ in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for row, (inputs, targets) in enumerate(rows):
        ids[row, :len(inputs)] = torch.from_numpy(inputs)
        mask[row, :len(inputs)] = 1
        labels[row, :len(inputs)] = torch.from_numpy(targets)
    return ids, mask, labels


class VecoCollator:
    """List of (Sample, x, y) of one kind → micro-batch dict (all long):

    x_ids, x_mask, x_labels [B, Tx] = <s> x̂ </s>; y_ids, y_mask, y_labels [B, Ty] = <s> ŷ </s>;
    bilingual with tlm: tlm_ids, tlm_mask, tlm_labels [B, Tt] = <s> x </s></s> y </s> with its
    own mask draw; kind [B] (0 mono, 1 bilingual); lang_id [B] (language / pair id).
    Padded with pad_id to the longest row of the micro-batch; labels -100 where not masked.
    """

    def __init__(self, cfg: RunConfig, tokenizer: dict):
        v = cfg.veco
        self.seed = cfg.data.seed
        self.mask_prob = (v.mono_mask_prob, v.bilingual_mask_prob)
        self.max_len = (cfg.data.max_seq_len, v.bilingual_max_len)
        self.shares = (v.leave_unmasked_prob, v.random_token_prob)
        self.tlm = v.tlm
        self.cls, self.sep = int(tokenizer["cls_id"]), int(tokenizer["sep_id"])
        self.pad, self.mask_id = int(tokenizer["pad_id"]), int(tokenizer["mask_id"])
        self.specials = special_ids(tokenizer)
        self.replacements = np.setdiff1d(np.arange(int(tokenizer["vocab_size"])), self.specials)

    def _masked(self, ids: np.ndarray, kind: int, stream: int, n: int,
                sequence: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, stream, n, sequence])
        return mask_tokens(ids, rng, self.mask_prob[kind], *self.shares, self.mask_id,
                           self.specials, self.replacements)

    def __call__(self, items: Sequence[tuple[Sample, np.ndarray, np.ndarray]]) -> dict[str, Tensor]:
        if not items:
            raise ValueError("empty micro-batch")
        kind = items[0][0][0]
        if any(sample[0] != kind for sample, _, _ in items):
            raise ValueError("a micro-batch mixes monolingual and bilingual samples")
        limit = self.max_len[kind]
        rows: dict[str, list] = {"x": [], "y": [], "tlm": []}
        for (_, lang, item, stream, n), x, y in items:
            longest = max(len(x), len(y)) + 2
            if longest > limit:
                key = "data.max_seq_len" if kind == MONO else "veco.bilingual_max_len"
                raise ValueError(f"a {KINDS[kind]} sample (language {lang}, item {item}) has "
                                 f"{longest} tokens with <s> and </s> > {key}={limit}; rebuild "
                                 f"the data or raise {key}")
            for sequence, (name, ids) in enumerate((("x", x), ("y", y))):
                wrapped = np.concatenate([[self.cls], ids, [self.sep]]).astype(np.int64)
                rows[name].append(self._masked(wrapped, kind, stream, n, sequence))
            if kind == BILINGUAL and self.tlm:
                joined = np.concatenate([[self.cls], x, [self.sep, self.sep], y, [self.sep]])
                rows["tlm"].append(self._masked(joined.astype(np.int64), kind, stream, n, 2))
        batch = {}
        for name, group in rows.items():
            if group:
                batch[f"{name}_ids"], batch[f"{name}_mask"], batch[f"{name}_labels"] = \
                    _pad(group, self.pad)
        batch["kind"] = torch.full((len(items),), kind, dtype=torch.long)
        batch["lang_id"] = torch.tensor([sample[1] for sample, _, _ in items], dtype=torch.long)
        return batch


def _loader(cfg: RunConfig, info: VecoDataInfo, batch_indices) -> DataLoader:
    workers = cfg.data.num_workers
    return DataLoader(VecoSource(info.corpus_folders, info.parallel_folders),
                      batch_sampler=batch_indices, num_workers=workers,
                      collate_fn=VecoCollator(cfg, info.tokenizer),
                      prefetch_factor=2 if workers else None)


def _accumulation(cfg: RunConfig, world_size: int) -> int:
    per_micro_step = cfg.train.micro_batch_size * world_size
    if cfg.train.global_batch_size % per_micro_step:
        raise ValueError(f"train.global_batch_size={cfg.train.global_batch_size} is not divisible "
                         f"by micro_batch_size x world size = {per_micro_step}")
    return cfg.train.global_batch_size // per_micro_step


class _StepBatchIndices:
    """Batch sampler for DataLoader: from optimizer step `first_step` on, this rank's
    accumulation micro-batches (lists of `Sample`) of each step's stream; infinite."""

    def __init__(self, cfg: RunConfig, info: VecoDataInfo, rank: int, world_size: int,
                 first_step: int):
        self.cfg, self.rank, self.world_size, self.first_step = cfg, rank, world_size, first_step
        self.accumulation = _accumulation(cfg, world_size)
        self.train_ids = (info.mono_train_ids, info.bilingual_train_ids)
        kinds = {KINDS.index(step_kind(s, cfg)) for s in (1, 2)}
        self.samplers = {kind: stream_sampler(cfg, info, kind) for kind in sorted(kinds)}

    def __iter__(self) -> Iterator[list[Sample]]:
        step = self.first_step
        while True:
            kind_name = step_kind(step, self.cfg)
            kind = KINDS.index(kind_name)
            sampler, ids = self.samplers[kind], self.train_ids[kind]
            start = consumed_before(step, self.cfg)[kind]
            micro = micro_batch_size(kind_name, self.cfg)
            for span in islice(rank_positions(start, micro, self.rank, self.world_size),
                               self.accumulation):
                yield [(kind, lang, int(ids[lang][k]), kind, n)
                       for n, (lang, k) in zip(span, sampler.take(span.start, len(span)))]
            step += 1


def _generate(batches) -> Iterator[dict[str, Tensor]]:
    """A generator (closable, like `pretrain.data`'s) over a loader's batches."""
    yield from batches


def train_batches(cfg: RunConfig, rank: int, world_size: int, consumed_samples: int,
                  info: VecoDataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's training micro-batches, infinite, starting at optimizer step
    consumed_samples // global_batch_size + 1 (consumed_samples = steps done ×
    train.global_batch_size, the trainer's count); gradient_accumulation_steps micro-batches
    per step, all of the step's kind. Loaded by `data.num_workers` background workers."""
    info = info or veco_data_info(cfg)
    steps_done, rest = divmod(consumed_samples, cfg.train.global_batch_size)
    if consumed_samples < 0 or rest:
        raise ValueError(f"consumed_samples={consumed_samples} is not a whole number of steps of "
                         f"train.global_batch_size={cfg.train.global_batch_size}")
    indices = _StepBatchIndices(cfg, info, rank, world_size, steps_done + 1)
    return _generate(_loader(cfg, info, indices))


def eval_samples(cfg: RunConfig, info: VecoDataInfo, world_size: int) -> list[list[Sample]]:
    """Per kind (mono, bilingual): every held-out sample of the streams the schedule trains,
    shuffled once by data.seed (so that an evaluation cut short still sees every language) and
    truncated to a multiple of world_size; masks use the eval streams (2 + kind) and the
    position in the shuffled list, so they do not depend on the world size."""
    kinds = {step_kind(s, cfg) for s in (1, 2)}
    out = []
    for kind, held_out in ((MONO, info.mono_eval_ids), (BILINGUAL, info.bilingual_eval_ids)):
        items = [(lang, int(i)) for lang, ids in enumerate(held_out) for i in ids] \
            if KINDS[kind] in kinds else []
        order = np.random.default_rng([cfg.data.seed, 0xE7A2, kind]).permutation(len(items))
        samples = [(kind, *items[k], 2 + kind, n) for n, k in enumerate(order)]
        out.append(samples[: len(samples) - len(samples) % world_size])
    return out


def eval_batches(cfg: RunConfig, rank: int, world_size: int,
                 info: VecoDataInfo | None = None) -> Iterator[dict[str, Tensor]]:
    """This rank's held-out micro-batches (rank r takes samples r, r + W, … of each kind);
    finite, deterministic, identical masks at every evaluation. Mono and bilingual batches
    alternate (never mixed inside one) until one kind runs out, so that `train.eval_batches`
    sees both; every rank yields the same number of batches."""
    info = info or veco_data_info(cfg)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    per_kind = []
    for kind, samples in enumerate(eval_samples(cfg, info, world_size)):
        mine, micro = samples[rank::world_size], micro_batch_size(KINDS[kind], cfg)
        per_kind.append([mine[i:i + micro] for i in range(0, len(mine), micro)])
    batches = [b for pair in zip_longest(*per_kind) for b in pair if b is not None]
    return _generate(_loader(cfg, info, batches) if batches else ())
