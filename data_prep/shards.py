"""Resumable, parallel builds of one IndexedDataset from deterministic work units.

A build is split into numbered units whose content depends only on the inputs and the build
parameters (never on worker count or timing). Each unit is written by whichever worker runs it
to `OUT/.work/shards/NNNNN.{bin,idx}`, followed by `NNNNN.json` (its counters) as the commit
marker. `--resume` skips committed units; the final merge concatenates shards in unit order, so
an interrupted-and-resumed build is byte-identical to an uninterrupted one. `manifest.json` is
written last and atomically: its presence means the build is complete.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from data_prep.format import FORMAT_VERSION, GROUPS_SUFFIX, MANIFEST, PREFIXES, megatron_indexed

WORK = ".work"


class BuildError(RuntimeError):
    """A build cannot start or continue; the message says what to do."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # parts of one build may race
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def add_counts(total: dict, part: Mapping) -> dict:
    """Sum nested dicts of integer counters in place."""
    for key, value in part.items():
        if isinstance(value, Mapping):
            add_counts(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


def write_shard(work_dir: str | Path, unit: int, documents: Iterable[list[np.ndarray]],
                counts: Mapping, groups: Sequence[int] | None = None) -> None:
    """Write one unit's documents (each a list of int32 sequences) and commit it.

    `groups` (optional): sizes of consecutive runs of documents that belong together (MRC: the
    examples of one entity), summing to the number of documents; the merge turns them into
    `PREFIX.groups.npy` so that readers can split by group (`BuiltDataset.group_offsets`).
    """
    import torch

    IndexedDatasetBuilder = megatron_indexed().IndexedDatasetBuilder
    shard_dir = Path(work_dir) / "shards"
    prefix = shard_dir / f"{unit:05d}"
    tmp = shard_dir / f"{unit:05d}.partial"
    builder = IndexedDatasetBuilder(str(tmp) + ".bin", dtype=np.int32)
    n_documents = 0
    for sequences in documents:
        lengths = [len(s) for s in sequences]
        flat = np.concatenate(sequences).astype(np.int32) if sequences else np.zeros(0, np.int32)
        builder.add_document(torch.from_numpy(flat), lengths)
        n_documents += 1
    builder.finalize(str(tmp) + ".idx")
    if groups is not None:
        sizes = np.asarray(groups, dtype=np.int64).reshape(-1)
        if int(sizes.sum()) != n_documents or (sizes <= 0).any():
            raise ValueError(f"unit {unit}: group sizes {sizes.tolist()[:8]}… must be positive "
                             f"and sum to the {n_documents} documents")
        _atomic_save(prefix.with_suffix(GROUPS_SUFFIX), sizes)
    os.replace(str(tmp) + ".bin", str(prefix) + ".bin")
    os.replace(str(tmp) + ".idx", str(prefix) + ".idx")
    atomic_write_text(prefix.with_suffix(".json"), json.dumps(counts, sort_keys=True))


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _worker_init() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes already use the cores


def run_tasks(tasks: list, run: Callable[[object], int], *, workers: int, total: int,
              committed: int, desc: str, progress: bool | None = None) -> None:
    """Run `run(task)` for every task, in a fork pool when workers > 1, under one progress bar
    over `total` units of which `committed` are already built; `run` returns how many units its
    task committed. `run` is a module-level function (forked workers inherit module state)."""
    from tqdm import tqdm

    megatron_indexed()  # imported once, quietly, before the workers fork
    with tqdm(total=total, initial=committed, desc=desc, unit="unit",
              disable=None if progress is None else not progress) as bar:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                bar.update(run(task))
            return
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(min(workers, len(tasks)),
                                                      _worker_init) as pool:
            for count in pool.imap_unordered(run, tasks):
                bar.update(count)


def check_writable(out_dir: str | Path) -> None:
    """Raise ValueError when the build folder `out_dir` cannot be created or written: a regular
    file in its place or on its path, or a folder without write permission. Cheap: call it
    before any expensive work."""
    out = Path(out_dir)
    existing = out
    while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == out else f"is under {existing}, which is a file"
        raise ValueError(f"--out {out} {where}: pass a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {existing} is not writable (permission denied); pass "
                         f"another --out")


def parse_part(text: str | None) -> tuple[int, int] | None:
    """--part "i/N" -> (i, N) with 0 <= i < N."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--part {text}: expected i/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--part {text}: need 0 <= i < N")
    return i, n


def add_part_options(parser) -> None:
    parser.add_argument("--part", metavar="i/N", default=None,
                        help="build only part i of N (0-based; parts may run at once, on any "
                             "machines sharing --out), then --merge")
    parser.add_argument("--merge", action="store_true",
                        help="merge the parts' work into the finished dataset (builds nothing)")


def _params_diff(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class ShardedBuild:
    """Bookkeeping of one build folder: params check, committed units, merge, manifest."""

    def __init__(self, out_dir: str | Path, kind: str, params: Mapping, *, resume: bool,
                 part: tuple[int, int] | None = None, merge_only: bool = False):
        """`part` (i, N): this run builds the units u with u % N == i and does not merge; the
        parts of one build share its .work/ (they may run at once, on any machines that see
        the folder). `merge_only`: build no unit, merge what the parts committed."""
        self.part, self.merge_only = part, merge_only
        resume = resume or part is not None or merge_only
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.prefix = PREFIXES[kind]
        self.params = dict(params)
        self.work_dir = self.out_dir / WORK
        self.complete = (self.out_dir / MANIFEST).is_file()
        params_file = self.work_dir / "params.json"
        if self.complete:
            if not resume:
                raise BuildError(f"{self.out_dir} already holds a finished build; choose another "
                                 f"--out or delete it")
            old = json.loads((self.out_dir / MANIFEST).read_text())["params"]
            self._check_same(old)
            # a kill between the manifest and the clean-up of merge() leaves the shards behind
            shutil.rmtree(self.work_dir, ignore_errors=True)
            return
        if self.work_dir.exists():
            if not resume:
                raise BuildError(f"{self.out_dir} holds an interrupted build; pass --resume to "
                                 f"continue it, or delete {self.work_dir} to start over")
            if params_file.is_file():
                self._check_same(json.loads(params_file.read_text()))
        self._created_work = not self.work_dir.exists() and part is None
        (self.work_dir / "shards").mkdir(parents=True, exist_ok=True)
        atomic_write_text(params_file, json.dumps(self.params, sort_keys=True, indent=1))

    def discard_unstarted(self) -> None:
        """After a failed start: remove .work/ when this run created it and it holds nothing
        worth resuming — no committed unit and no finished phase (a `meta.json`, e.g. the MRC
        article store) — so that the re-run with corrected arguments needs no --resume."""
        if self.complete or not getattr(self, "_created_work", False):
            return
        worth = any((self.work_dir / "shards").glob("*.json")) or \
            any(self.work_dir.glob("*/meta.json"))
        if not worth:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _check_same(self, old: Mapping) -> None:
        diff = _params_diff(old, json.loads(json.dumps(self.params)))
        if diff:
            raise BuildError(f"--resume with different parameters than the build in "
                             f"{self.out_dir}: " + "; ".join(diff))

    def committed(self, unit: int) -> bool:
        return (self.work_dir / "shards" / f"{unit:05d}.json").is_file()

    def pending(self, n_units: int) -> list[int]:
        """Units this run has to build: uncommitted ones (of its part; none when merge_only)."""
        if self.merge_only:
            return []
        return [u for u in range(n_units) if not self.committed(u)
                and (self.part is None or u % self.part[1] == self.part[0])]

    def part_report(self, n_units: int) -> dict:
        """What a --part run prints instead of merging."""
        missing = [u for u in range(n_units) if not self.committed(u)]
        i, n = self.part
        return {"out": str(self.out_dir), "part": f"{i}/{n}", "units": n_units,
                "units_missing": len(missing),
                "next": "merge with --merge" if not missing else
                        f"run the other parts (first missing unit: {missing[0]}, part "
                        f"{missing[0] % n}/{n}), then --merge"}

    def merge(self, n_units: int, extra: Mapping,
              profile: Callable[[float], dict] | None = None) -> dict:
        """Concatenate all committed shards in unit order, write the manifest, drop .work/.

        `profile(merge_seconds)`: how the build went (sizes, seconds per phase), kept under
        the manifest's "profile" — the only part of a manifest that may differ between two
        builds of the same input."""
        began = time.perf_counter()
        IndexedDatasetBuilder = megatron_indexed().IndexedDatasetBuilder

        missing = [u for u in range(n_units) if not self.committed(u)]
        if missing:
            hint = f" (part {missing[0] % self.part[1]}/{self.part[1]})" if self.part else ""
            raise BuildError(f"cannot merge: {len(missing)} units not built (first: {missing[0]}"
                             f"{hint}); run the missing parts, or --resume without --merge")
        shard_dir = self.work_dir / "shards"
        tmp = self.out_dir / f"{self.prefix}.partial"
        builder = IndexedDatasetBuilder(str(tmp) + ".bin", dtype=np.int32)
        totals: dict = {}
        # megatron's add_index runs gc.collect() per shard (~0.5 s with torch + transformers
        # loaded); freezing the existing heap first makes each collection nearly free.
        gc.freeze()
        try:
            for unit in range(n_units):
                builder.add_index(str(shard_dir / f"{unit:05d}"))
                add_counts(totals, json.loads((shard_dir / f"{unit:05d}.json").read_text()))
        finally:
            gc.unfreeze()
        builder.finalize(str(tmp) + ".idx")
        final = self.out_dir / self.prefix
        files = {"prefix": self.prefix}
        group_files = [shard_dir / f"{unit:05d}{GROUPS_SUFFIX}" for unit in range(n_units)]
        has_groups = [path.is_file() for path in group_files]
        if any(has_groups):
            if not all(has_groups):
                raise BuildError(f"cannot merge: unit {has_groups.index(False)} has no group "
                                 f"sizes but others do; delete {self.work_dir} and rebuild")
            sizes = np.concatenate([np.load(path) for path in group_files]) if group_files \
                else np.zeros(0, np.int64)
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            _atomic_save(final.with_suffix(GROUPS_SUFFIX), offsets)
            files.update(groups=final.name + GROUPS_SUFFIX, group_count=int(len(sizes)),
                         groups_sha256=_sha256(str(final) + GROUPS_SUFFIX))
        os.replace(str(tmp) + ".bin", str(final) + ".bin")
        os.replace(str(tmp) + ".idx", str(final) + ".idx")
        manifest = add_counts(json.loads(json.dumps(dict(extra))), totals)  # unit counters add up
        files["sha256"] = _sha256(str(final) + ".bin")
        manifest.update(format_version=FORMAT_VERSION, kind=self.kind, params=self.params,
                        files=files)
        if profile is not None:
            manifest["profile"] = profile(round(time.perf_counter() - began, 3))
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True,
                                                              ensure_ascii=False))
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.complete = True
        return manifest


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def counter_dict(counter: Counter) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counter.items())}
