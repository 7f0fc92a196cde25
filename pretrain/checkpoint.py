"""Crash-safe, verified, resumable checkpoints: DeepSpeed's own files plus our client state.

Layout under `RUN_DIR/checkpoints/`::

    step_000010/                   engine.save_checkpoint(tag=…, client_state=…) on every rank
        mp_rank_00_model_states.pt, zero_pp_rank_*_optim_states.pt, …   (DeepSpeed)
        rng_rank00000.json         RNG states of each rank (python, numpy, torch[, cuda])
        complete.json              commit marker = our `ClientState` + `"files"`: size and CRC-32
                                   of every other file of the tag; written by rank 0 after
                                   every rank finished writing (barrier)
        universal/                 made on demand to resume on another world size
    latest                         "step_000010", replaced atomically after complete.json

A tag directory without `complete.json` (a save killed half-way) is never resumed from and is
deleted once a newer checkpoint is `latest`. A tag whose files no longer match its table
(missing, truncated, flipped bytes) or whose `complete.json` does not parse is *damaged*:
`--resume auto` skips it with a warning and takes the newest intact one, an explicit
`--resume PATH` to it is refused. Weights that are not all finite are never saved
(`NonFiniteWeights`). Only the newest `keep_last` intact checkpoints are kept, and older ones
are deleted only after the new one is `latest`. Checkpoints live on a file system every rank
can see (one `save_dir` shared by all nodes).

Hashing is split over ranks (rank r takes every world-th file) at save and at resume, so it
costs 1/world of the checkpoint per rank (zlib.crc32, ~2.4 GB/s). Format-1 checkpoints (no
file table) are accepted unverified.

No pickles of our own: client state and RNG states are JSON; DeepSpeed's `.pt` files are its
business. This module never builds models or data.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import zlib
from argparse import Namespace
from collections.abc import Callable, Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
LATEST = "latest"
COMPLETE = "complete.json"
UNIVERSAL = "universal"
TAG_RE = re.compile(r"^step_(\d{6,})$")
FORMAT_VERSION = 2
#: Not recorded in a tag's file table: the commit marker itself and what is derived later.
UNRECORDED = (COMPLETE, UNIVERSAL, f"{UNIVERSAL}.partial", "latest_universal")
CHUNK_BYTES = 4 << 20
#: ZeRO stage switches (saved, resumed) a resume supports; any stage may change world size.
#: Measured with DeepSpeed 0.19.8 on the tiny recipe, 1 and 2 CPU ranks, every pair: 1 ↔ 2 load
#: directly on the same world size and through a universal checkpoint on another. Refused:
#: to or from stage 0 (no ZeRO optimizer files to convert; a universal checkpoint loads no
#: weights into a stage-0 engine) and 3 ↔ 1/2 (the universal checkpoint keeps the source
#: stage's model-states file name and optimizer-state layout, which the other cannot read).
STAGE_SWITCHES = frozenset({(1, 2), (2, 1)})


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed from with this run; the message says what to do."""


class NonFiniteWeights(RuntimeError):
    """The weights hold NaN/inf: `save` refused to commit them (no complete.json, no latest)."""


def tag_for_step(step: int) -> str:
    return f"step_{step:06d}"


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


@dataclass
class ClientState:
    """What our code needs besides DeepSpeed's model/optimizer/scheduler state to resume.

    `model_shapes`: parameter name → shape of the unwrapped model. `data_hashes`: language →
    `data_prep.format.manifest_hash` of its folder; `data_hash` = hash of the whole blend.
    """

    step: int
    consumed_samples: int
    world_size: int
    zero_stage: int
    data_hash: str
    data_hashes: dict[str, str] = field(default_factory=dict)
    model_shapes: dict[str, list[int]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, tree: dict) -> "ClientState":
        known = {k: tree[k] for k in cls.__dataclass_fields__ if k in tree}
        return cls(**known)

    @classmethod
    def required(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.default is MISSING
                and f.default_factory is MISSING]


# ---------------------------------------------------------------------------- RNG states

def capture_rng() -> dict:
    """This process's RNG states as JSON-able data."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def restore_rng(state: dict) -> None:
    """Inverse of `capture_rng`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))
    if "cuda" in state and torch.cuda.is_available():
        raw = np.frombuffer(base64.b64decode(state["cuda"]), dtype=np.uint8).copy()
        torch.cuda.set_rng_state(torch.from_numpy(raw))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rng_rank{rank:05d}.json"


# ---------------------------------------------------------------------------- small files

def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def is_complete(tag_dir: Path) -> bool:
    return (tag_dir / COMPLETE).is_file()


def _commit_problem(tree) -> str | None:
    """What makes a parsed complete.json unusable, or None."""
    if not isinstance(tree, dict):
        return f"holds a JSON {type(tree).__name__}, not an object"
    missing = [name for name in ClientState.required() if name not in tree]
    if missing:
        return f"lacks {', '.join(missing)}"
    version, table = tree.get("format_version", 1), tree.get("files")
    if not isinstance(version, int):
        return f"format_version {version!r} is not a number"
    if table is None:
        return "lacks its file table" if version >= 2 else None  # format 1: unverified
    if not (isinstance(table, dict) and all(
            isinstance(entry, dict) and isinstance(entry.get("size"), int)
            and isinstance(entry.get("crc32"), str) for entry in table.values())):
        return "its file table is malformed"
    return None


def _load_commit(tag_dir: Path) -> tuple[dict | None, str | None]:
    """(complete.json as a dict, None), or (None, "complete.json: <what is wrong>")."""
    try:
        tree = json.loads((tag_dir / COMPLETE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{COMPLETE}: missing (the save was interrupted)"
    except OSError as err:
        return None, f"{COMPLETE}: unreadable ({err.strerror or err})"
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        return None, f"{COMPLETE}: not valid JSON ({err})"
    problem = _commit_problem(tree)
    return (None, f"{COMPLETE}: {problem}") if problem else (tree, None)


def read_commit(tag_dir: str | Path) -> dict:
    """complete.json of a tag: client state and (format 2) `"files"` table. ResumeError if the
    tag is incomplete or its complete.json is unusable."""
    tag_dir = Path(tag_dir)
    if not is_complete(tag_dir):
        raise ResumeError(f"{tag_dir} has no {COMPLETE}: that checkpoint was interrupted while "
                          f"being written; resume from an earlier one (--resume auto picks it)")
    tree, problem = _load_commit(tag_dir)
    if problem:
        raise ResumeError(f"{tag_dir}: {damaged(tag_dir, [problem])}")
    return tree


def read_client_state(tag_dir: str | Path) -> ClientState:
    return ClientState.from_dict(read_commit(tag_dir))


def _step_of(path: Path) -> int | None:
    match = TAG_RE.match(path.name)
    return int(match.group(1)) if match and path.is_dir() else None


def list_checkpoints(root: Path, *, complete_only: bool = True) -> list[Path]:
    """Tag directories under `root`, oldest first."""
    if not root.is_dir():
        return []
    tags = [p for p in root.iterdir() if _step_of(p) is not None]
    if complete_only:
        tags = [p for p in tags if is_complete(p)]
    return sorted(tags, key=_step_of)


# ---------------------------------------------------------------------------- ranks

def _share() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mine(items: list, share: tuple[int, int]) -> list:
    """The items rank `share[0]` of `share[1]` handles: every world-th one from its rank on."""
    rank, world = share
    return items[rank::world]


def _all_gather(obj) -> list:
    """`obj` of every rank, in rank order (collective; [obj] without a process group)."""
    import torch.distributed as dist

    if _share()[1] == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _from_rank0(obj):
    """Rank 0's `obj` on every rank (collective)."""
    import torch.distributed as dist

    if _share()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------------------- file tables

def checksum(path: Path) -> tuple[int, str]:
    """(size in bytes, CRC-32 as 8 hex digits) of one file, read in `CHUNK_BYTES` pieces."""
    size, crc = 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
    return size, f"{crc:08x}"


def tag_files(tag_dir: Path) -> list[str]:
    """Sorted "/"-separated paths, relative to `tag_dir`, of the files its table records:
    everything below it (DeepSpeed's files, RNG files) except `UNRECORDED`."""
    found = []
    for folder, dirs, files in os.walk(tag_dir):
        rel = Path(folder).relative_to(tag_dir)
        if rel == Path("."):
            dirs[:] = [name for name in dirs if name not in UNRECORDED]
            files = [name for name in files if name not in UNRECORDED]
        found += [(rel / name).as_posix() for name in files]
    return sorted(found)


def file_table(tag_dir: Path, names: list[str], share: tuple[int, int] = (0, 1)) -> dict:
    """{name: {"size": bytes, "crc32": hex}} for this rank's share of `names`."""
    table = {}
    for name in _mine(names, share):
        size, crc = checksum(tag_dir / name)
        table[name] = {"size": size, "crc32": crc}
    return table


def record_files(tag_dir: Path) -> dict:
    """The file table of a tag every rank finished writing (collective, same on every rank):
    rank 0 lists the files, each rank hashes its share."""
    names = _from_rank0(tag_files(tag_dir) if _share()[0] == 0 else None)
    parts = _all_gather(file_table(tag_dir, names, _share()))
    return dict(sorted((name, entry) for part in parts for name, entry in part.items()))


def _file_problem(path: Path, entry: dict, checksums: bool) -> str | None:
    """What is wrong with one recorded file, or None."""
    try:
        size = path.stat().st_size
        if size != entry["size"]:
            cut = " (truncated)" if size < entry["size"] else ""
            return f"{size} bytes, {entry['size']} recorded{cut}"
        if checksums and (crc := checksum(path)[1]) != entry["crc32"]:
            return f"checksum differs (crc32 {crc}, {entry['crc32']} recorded)"
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    return None


def verify(tag_dir: str | Path, *, checksums: bool = True,
           share: tuple[int, int] = (0, 1)) -> list[str]:
    """Problems of a complete tag as "<file>: <what>" lines; [] = intact.

    Problems: complete.json missing, unreadable, not JSON or not a client state; a file of its
    table missing, of another size, or (with `checksums`) of another CRC-32. Files that are not
    in the table are fine; a format-1 tag (no table) passes, sizes unknown. With
    `share=(rank, world)` only that rank's share of the files is checked.
    """
    tag_dir = Path(tag_dir)
    tree, problem = _load_commit(tag_dir)
    if problem:
        return [problem]
    table = tree.get("files") or {}
    problems = []
    for name in _mine(sorted(table), share):
        found = _file_problem(tag_dir / name, table[name], checksums)
        if found:
            problems.append(f"{name}: {found}")
    return problems


def verify_sizes(tag_dir: str | Path) -> list[str]:
    """`verify` without checksums: stat calls only, for callers without a process group."""
    return verify(tag_dir, checksums=False)


def verify_across_ranks(tag_dir: str | Path) -> list[str]:
    """`verify` with the checksum work split over the ranks (collective): every rank gets the
    same verdict."""
    parts = _all_gather(verify(tag_dir, share=_share()))
    return sorted({problem for part in parts for problem in part})


def describe(problems: list[str]) -> str:
    more = len(problems) - 1
    return problems[0] + (f"; {more} more problem{'s' * (more > 1)}" if more > 0 else "")


def damaged(tag_dir: Path, problems: list[str]) -> str:
    return f"checkpoint {tag_dir.name} is damaged ({describe(problems)})"


# ---------------------------------------------------------------------------- finite weights

def count_nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[int, str | None]:
    """(number of NaN/inf values, name of the first tensor holding one) over the
    floating-point tensors of `named`."""
    total, first = 0, None
    for name, tensor in named:
        if tensor.is_floating_point():
            bad = int(tensor.numel() - torch.isfinite(tensor).sum().item())
            if bad:
                total, first = total + bad, first or name
    return total, first


def _local_weights(engine, share: tuple[int, int]):
    """(name, tensor) of the weights this rank checks: its ZeRO-3 partition of each parameter
    (`ds_tensor`, padding cut off), else (every rank holds full copies) its share of them."""
    import torch.distributed as dist

    params = list(engine.module.named_parameters())
    if not any(hasattr(p, "ds_tensor") for _, p in params):
        return [(name, p.detach()) for name, p in _mine(params, share)]
    return [(name, own_part(p.ds_tensor.detach(), p.ds_numel,
                            dist.get_rank(group=p.ds_process_group))) for name, p in params]


def own_part(partition: torch.Tensor, numel: int, rank: int) -> torch.Tensor:
    """The elements of rank `rank`'s ZeRO-3 partition of a `numel`-element parameter that
    belong to it: DeepSpeed pads the last partition with uninitialised memory."""
    flat = partition.view(-1)
    return flat[:max(0, min(flat.numel(), numel - flat.numel() * rank))]


def nonfinite_weights(engine) -> tuple[int, str | None]:
    """`count_nonfinite` over the whole model of a DeepSpeed engine (collective; ZeRO 0-3)."""
    parts = _all_gather(count_nonfinite(_local_weights(engine, _share())))
    return sum(n for n, _ in parts), next((name for _, name in parts if name), None)


# ---------------------------------------------------------------------------- save

def save(engine, run_dir: str | Path, state: ClientState, keep_last: int) -> Path:
    """Save a checkpoint of step `state.step` on every rank (collective) and commit it.

    Order: the weights must be finite (else `NonFiniteWeights` on every rank, nothing written)
    → DeepSpeed writes its files on all ranks → each rank writes its RNG file → barrier → the
    ranks checksum the files (a share each) → rank 0 writes `complete.json` (client state +
    file table), then `latest` (atomically), then prunes old checkpoints → barrier. A crash
    anywhere before `complete.json` leaves a tag that is never resumed from.
    """
    import torch.distributed as dist
    from deepspeed.checkpoint.constants import (UNIVERSAL_CHECKPOINT_INFO,
                                                UNIVERSAL_CHECKPOINT_VERSION_KEY,
                                                UNIVERSAL_CHECKPOINT_VERSION_VALUE)

    bad, where = nonfinite_weights(engine)
    if bad:
        raise NonFiniteWeights(f"the weights of step {state.step} hold {bad} non-finite values "
                               f"(e.g. in {where}); checkpoint not saved, `latest` is unchanged")
    root = checkpoint_root(run_dir)
    tag = tag_for_step(state.step)
    tag_dir = root / tag
    rank = dist.get_rank()
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        if tag_dir.exists():  # a crashed attempt at this step, or a run resumed from earlier
            shutil.rmtree(tag_dir)
    dist.barrier()
    client_state = state.to_dict()
    # Lets `ds_to_universal` convert this checkpoint without --inject_missing_state.
    client_state[UNIVERSAL_CHECKPOINT_INFO] = {
        UNIVERSAL_CHECKPOINT_VERSION_KEY: UNIVERSAL_CHECKPOINT_VERSION_VALUE}
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state, save_latest=False)
    _atomic_write(_rng_file(tag_dir, rank), json.dumps(capture_rng()))
    dist.barrier()  # every rank's files are on disk
    table = record_files(tag_dir)
    if rank == 0:
        commit = {**state.to_dict(), "format_version": FORMAT_VERSION, "files": table}
        _atomic_write(tag_dir / COMPLETE, json.dumps(commit, indent=1))
        _atomic_write(root / LATEST, tag)
        prune(root, keep_last)
    dist.barrier()
    return tag_dir


def prune(root: Path, keep_last: int) -> list[Path]:
    """Delete what is older than `latest` and not among the newest `keep_last` intact
    checkpoints (sizes checked): older intact ones, incomplete and damaged ones. Never touches
    `latest` itself nor anything newer. Returns what was deleted."""
    latest = resolve_latest(root)
    if latest is None:
        return []
    older = [p for p in list_checkpoints(root, complete_only=False)
             if _step_of(p) <= _step_of(latest)]
    intact = [p for p in older if is_complete(p) and not verify_sizes(p)]
    keep = set(intact[-max(1, keep_last):]) | {latest}
    doomed = [p for p in older if p not in keep]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


# ---------------------------------------------------------------------------- find / check

def _latest_pointer(root: Path) -> Path | None:
    """The complete tag `latest` names, or None (no pointer, garbage, incomplete tag)."""
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    tag_dir = root / name
    return tag_dir if TAG_RE.match(name) and is_complete(tag_dir) else None


def candidates(root: Path) -> list[Path]:
    """Complete tags of `root` to resume from, best first: the one `latest` names, then those
    before it, newest first (without a usable `latest`: all, newest first). A tag newer than
    `latest` is ignored: a crash came between its complete.json and `latest`, or it belongs
    to an abandoned continuation."""
    complete = list_checkpoints(root)
    pointer = _latest_pointer(root)
    if pointer is not None:
        complete = [p for p in complete if _step_of(p) <= _step_of(pointer)]
    return complete[::-1]


def resolve_latest(root: Path) -> Path | None:
    """The checkpoint `latest` stands for, unverified: `latest` if it names a complete tag,
    else the newest complete tag (a crash between `complete.json` and `latest`), else None."""
    found = candidates(root)
    return found[0] if found else None


def newest_intact(root: Path, *, check: Callable[[Path], list[str]] = verify_sizes,
                  warn: Callable[[str], None] | None = None,
                  action: str = "resuming from") -> Path | None:
    """The first of `candidates(root)` that `check` finds intact (None if `root` has no
    complete tag). Each damaged one skipped is reported through `warn` as one line
    "warning: checkpoint TAG is damaged (FILE: WHAT); <action> OLDER_TAG". ResumeError if
    none is intact."""
    skipped = []
    for tag_dir in candidates(root):
        problems = check(tag_dir)
        if not problems:
            for bad, found in skipped:
                if warn is not None:
                    warn(f"warning: {damaged(bad, found)}; {action} {tag_dir.name}")
            return tag_dir
        skipped.append((tag_dir, problems))
    if skipped:
        raise ResumeError(
            f"no intact checkpoint in {root}: " +
            "; ".join(damaged(bad, found) for bad, found in skipped) +
            f". Restore the damaged files, or move {root} away to start over")
    return None


def find_resume(run_dir: str | Path, resume: str, *,
                check: Callable[[Path], list[str]] = verify_sizes,
                warn: Callable[[str], None] | None = None) -> Path | None:
    """`--resume` → tag directory or None.

    "none" = start fresh; "auto" = the newest intact of `candidates(RUN_DIR/checkpoints)`
    (None if there is none; damaged ones skipped, see `newest_intact`); a path = a tag directory
    (must be complete and intact), or a checkpoints or run directory (as "auto" there).
    `check` judges intactness: the default (`verify_sizes`) needs no process group; the trainer
    passes `verify_across_ranks`.
    """
    if resume == "none":
        return None
    if resume == "auto":
        return newest_intact(checkpoint_root(run_dir), check=check, warn=warn)
    path = Path(resume)
    if not path.exists():
        raise ResumeError(f"--resume {resume}: no such file or directory")
    if _step_of(path) is not None:
        if not is_complete(path):
            read_commit(path)  # raises: interrupted
        problems = check(path)
        if problems:
            raise ResumeError(f"--resume {resume}: {damaged(path, problems)}; resume from an "
                              f"earlier checkpoint (--resume auto skips damaged ones)")
        return path
    for root in (path, path / CHECKPOINTS):
        if candidates(root):
            return newest_intact(root, check=check, warn=warn)
    raise ResumeError(f"--resume {resume}: no complete checkpoint (a step_NNNNNN folder with "
                      f"{COMPLETE}) there or in its {CHECKPOINTS}/ folder")


def check_compatible(saved: ClientState, current: ClientState, where: Path) -> list[str]:
    """Refuse a resume onto other data or another model; return notes on allowed changes
    (other config values, world size)."""
    if saved.data_hash != current.data_hash:
        changed = sorted(lang for lang in set(saved.data_hashes) | set(current.data_hashes)
                         if saved.data_hashes.get(lang) != current.data_hashes.get(lang))
        raise ResumeError(
            f"{where} was trained on different data (languages whose manifest changed, appeared "
            f"or disappeared: {', '.join(changed) or 'see data.paths'}); resuming would not "
            f"continue the same run. Point data.paths at the original data, or start a new run "
            f"(--run-dir NEW or --resume none)")
    if saved.model_shapes != current.model_shapes:
        names = sorted(set(saved.model_shapes) | set(current.model_shapes))
        diffs = [f"{n}: {saved.model_shapes.get(n)} -> {current.model_shapes.get(n)}"
                 for n in names if saved.model_shapes.get(n) != current.model_shapes.get(n)]
        raise ResumeError(
            f"{where} holds a model of another shape ({len(diffs)} parameters differ, e.g. "
            f"{'; '.join(diffs[:3])}); use the model section it was trained with (its config is "
            f"in {where / COMPLETE}) or start a new run")
    old, new = saved.zero_stage, current.zero_stage
    if old != new and (old, new) not in STAGE_SWITCHES:
        why = ("a stage-0 checkpoint has no ZeRO optimizer files to convert, and a stage-0 "
               "engine loads no weights from a universal checkpoint" if 0 in (old, new) else
               "DeepSpeed's universal checkpoints do not carry over between stage 3 and "
               "stages 1/2")
        raise ResumeError(
            f"{where} was saved with ZeRO stage {old} and cannot be resumed with ZeRO stage "
            f"{new} ({why}); only switches between stages 1 and 2 work: use --set "
            f"train.zero_stage={old}")
    notes = []
    if saved.world_size != current.world_size:
        notes.append(f"world size {saved.world_size} -> {current.world_size}")
    notes += _config_changes(saved.config, current.config)
    return notes


def _config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def needs_universal(saved: ClientState, world_size: int, zero_stage: int) -> bool:
    """ZeRO 1-3 partition optimizer state by rank: another world size needs a universal
    checkpoint. Stages 1 and 2 write the same files, so on the same world size a 1 ↔ 2 switch
    loads directly (RNG states included: bit-identical). Stage 0 state is not partitioned: any
    size loads it. (Other stage switches are refused by `check_compatible`.)"""
    if saved.zero_stage == 0 and zero_stage == 0:
        return False
    return saved.world_size != world_size


# ---------------------------------------------------------------------------- universal

def prepare_universal(tag_dir: Path) -> Path:
    """Convert `tag_dir` to a DeepSpeed universal checkpoint in `tag_dir/universal` (once;
    call on one rank, then barrier). Conversion writes to `universal.partial` and renames."""
    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    out = tag_dir / UNIVERSAL
    if out.is_dir():
        return out
    partial = tag_dir / f"{UNIVERSAL}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    # Same switches as its CLI; one worker: no process pool inside a training rank.
    ds_to_universal(Namespace(input_folder=str(tag_dir), output_folder=str(partial),
                              num_extract_workers=1, num_merge_workers=1, keep_temp_folder=False,
                              strict=True, inject_missing_state=False))
    os.replace(partial, out)
    stale = tag_dir / "latest_universal"  # ds_to_universal points it at the .partial name
    stale.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------- load

def load(engine, tag_dir: Path, *, universal: bool, restore_rng_state: bool) -> None:
    """Load model, optimizer and LR scheduler state into `engine` (collective) and, when the
    world size is unchanged, this rank's RNG states. With `universal`, the engine must have been
    built with `"checkpoint": {"load_universal": true}`."""
    import torch.distributed as dist

    load_dir, tag = (tag_dir, UNIVERSAL) if universal else (tag_dir.parent, tag_dir.name)
    path, _ = engine.load_checkpoint(str(load_dir), tag=tag, load_optimizer_states=True,
                                     load_lr_scheduler_states=True)
    if path is None:
        raise ResumeError(f"DeepSpeed could not load {load_dir / tag}")
    if restore_rng_state:
        rng_path = _rng_file(tag_dir, dist.get_rank())
        restore_rng(json.loads(rng_path.read_text(encoding="utf-8")))
