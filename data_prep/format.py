"""On-disk formats shared by `data_prep` (writer) and `pretrain` / `finetune` (readers).

Every built folder holds one megatron-core `IndexedDataset` (`PREFIX.bin` / `PREFIX.idx`) and a
`manifest.json`; the manifest is written last, so a folder without one is an unfinished build.

Layouts (all int32, one IndexedDataset *document* per example):

* ``mrc``      — 2 sequences per document:
  ``[input_ids]`` = ``<s> query </s></s> context </s>`` and
  ``[meta]``      = ``[context_start, context_end, s_1, e_1, …, s_k, e_k]``
  (token positions in ``input_ids``; ``context_end`` exclusive = index of the final ``</s>``;
  gold spans inclusive, all inside the context; k = 0 for an unanswerable example).
  The examples of one entity (one query) are consecutive; ``mrc.groups.npy`` holds the int64
  offsets of these groups (``BuiltDataset.group_offsets``), which the held-out split uses.
* ``corpus``   — 1 document per source document, one sequence per segment of token ids
  (no special tokens).
* ``parallel`` — 2 sequences per document: source ids, target ids (no special tokens).

This module must never import torch.distributed, DeepSpeed or anything from `pretrain`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREFIXES = {"mrc": "mrc", "corpus": "corpus", "parallel": "parallel"}
META_HEADER = 2  # context_start, context_end
GROUPS_SUFFIX = ".groups.npy"  # int64 offsets [G + 1]: group g = documents [off[g], off[g+1])


@dataclass
class MRCExample:
    """One encoded MRC example (token-level)."""

    input_ids: np.ndarray  # [T] int32
    context_start: int
    context_end: int  # exclusive
    answer_spans: np.ndarray  # [A, 2] int32, inclusive (start, end)

    @property
    def answerable(self) -> bool:
        return len(self.answer_spans) > 0

    def to_arrays(self) -> list[np.ndarray]:
        meta = np.concatenate(
            [np.array([self.context_start, self.context_end], dtype=np.int32),
             np.asarray(self.answer_spans, dtype=np.int32).reshape(-1)]
        )
        return [np.asarray(self.input_ids, dtype=np.int32), meta]

    @classmethod
    def from_arrays(cls, input_ids: np.ndarray, meta: np.ndarray) -> "MRCExample":
        spans = np.asarray(meta[META_HEADER:], dtype=np.int32).reshape(-1, 2)
        return cls(np.asarray(input_ids), int(meta[0]), int(meta[1]), spans)


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        hint = " (a .work/ folder is there: the build was interrupted; rerun it with --resume)" \
            if (folder / ".work").is_dir() else ""
        raise FileNotFoundError(f"no {MANIFEST} in {folder} — not a finished data_prep output{hint}")
    return json.loads(path.read_text(encoding="utf-8"))


def manifest_hash(folder: str | Path) -> str:
    """Stable identity of a built folder: hash of its manifest (which holds the content hash)."""
    manifest = read_manifest(folder)
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def open_indexed(prefix: str | Path):
    """Open `prefix.bin/.idx` with megatron-core (imported lazily: the import costs ~3 s)."""
    prefix = str(prefix)
    if not Path(prefix + ".idx").is_file() or not Path(prefix + ".bin").is_file():
        raise FileNotFoundError(
            f"no {prefix}.bin/.idx — was data_prep interrupted? rerun it with --resume")
    return megatron_indexed().IndexedDataset(prefix)


def megatron_indexed():
    """megatron-core's indexed_dataset module, imported without its Apex/TE warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


class BuiltDataset:
    """A finished data_prep folder: manifest + lazily opened IndexedDataset."""

    kind: str = ""
    sequences_per_item: int = 1

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if self.manifest.get("kind") != self.kind:
            raise ValueError(
                f"{self.folder} holds '{self.manifest.get('kind')}' data, expected '{self.kind}'")
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.folder} has format_version {self.manifest.get('format_version')}, this code "
                f"reads {FORMAT_VERSION}; rebuild it with this version of data_prep")

    @property
    def lang(self) -> str:
        return self.manifest["lang"]

    @cached_property
    def indexed(self):
        return open_indexed(self.folder / PREFIXES[self.kind])

    def __len__(self) -> int:
        if (self.folder / f"{PREFIXES[self.kind]}.bin").stat().st_size == 0:
            return 0  # an empty build: numpy cannot memory-map an empty file
        return len(self.indexed.document_indices) - 1

    def group_offsets(self) -> np.ndarray | None:
        """int64 [G + 1] offsets of the groups of consecutive items (MRC: all examples of one
        entity, i.e. of one query), or None for a folder built without them."""
        name = self.manifest.get("files", {}).get("groups")
        if not name:
            return None
        offsets = np.load(self.folder / name)
        if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != len(self) or \
                (np.diff(offsets) <= 0).any():
            raise ValueError(f"{self.folder / name} does not partition the {len(self)} items "
                             "into groups; rebuild the folder")
        return offsets

    def sequences(self, i: int) -> list[np.ndarray]:
        """Item i's sequences as copies: megatron's arrays are views of a memory map that is
        closed when the dataset is collected, and reading a view after that crashes the process
        (a segmentation fault, no exception)."""
        lo, hi = self.indexed.document_indices[i], self.indexed.document_indices[i + 1]
        return [np.array(self.indexed[j]) for j in range(lo, hi)]


class MRCDataset(BuiltDataset):
    kind = "mrc"

    def __getitem__(self, i: int) -> MRCExample:
        if not 0 <= i < len(self):
            raise IndexError(i)
        input_ids, meta = self.sequences(i)
        return MRCExample.from_arrays(input_ids, meta)


class CorpusDataset(BuiltDataset):
    """Monolingual documents; item i = list of segments (token-id arrays) of document i."""

    kind = "corpus"

    def __getitem__(self, i: int) -> list[np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.sequences(i)


class ParallelDataset(BuiltDataset):
    """Aligned sentence pairs; item i = (source ids, target ids)."""

    kind = "parallel"

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        src, tgt = self.sequences(i)
        return src, tgt
