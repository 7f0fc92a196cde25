"""Crash-safe, resumable checkpoints: DeepSpeed's own files plus our client state.

Layout under `RUN_DIR/checkpoints/`::

    step_000010/                   engine.save_checkpoint(tag=…, client_state=…) on every rank
        mp_rank_00_model_states.pt, zero_pp_rank_*_optim_states.pt, …   (DeepSpeed)
        rng_rank00000.json         RNG states of each rank (python, numpy, torch[, cuda])
        complete.json              commit marker = our `ClientState`, written by rank 0 after
                                   every rank finished writing (barrier)
        universal/                 made on demand to resume on another world size
    latest                         "step_000010", replaced atomically after complete.json

A tag directory without `complete.json` (a save killed half-way) is never resumed from and is
deleted once a newer checkpoint is `latest`. Only the newest `keep_last` complete checkpoints
are kept, and older ones are deleted only after the new one is `latest`. Checkpoints live on a
file system every rank can see (one `save_dir` shared by all nodes).

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
from argparse import Namespace
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
LATEST = "latest"
COMPLETE = "complete.json"
UNIVERSAL = "universal"
TAG_RE = re.compile(r"^step_(\d{6,})$")


class ResumeError(RuntimeError):
    """A checkpoint cannot be resumed from with this run; the message says what to do."""


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
    format_version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, tree: dict) -> "ClientState":
        known = {k: tree[k] for k in cls.__dataclass_fields__ if k in tree}
        return cls(**known)


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


def read_client_state(tag_dir: str | Path) -> ClientState:
    tag_dir = Path(tag_dir)
    if not is_complete(tag_dir):
        raise ResumeError(f"{tag_dir} has no {COMPLETE}: that checkpoint was interrupted while "
                          f"being written; resume from an earlier one (--resume auto picks it)")
    return ClientState.from_dict(json.loads((tag_dir / COMPLETE).read_text(encoding="utf-8")))


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


# ---------------------------------------------------------------------------- save

def save(engine, run_dir: str | Path, state: ClientState, keep_last: int) -> Path:
    """Save a checkpoint of step `state.step` on every rank (collective) and commit it.

    Order: DeepSpeed writes its files on all ranks → each rank writes its RNG file → barrier →
    rank 0 writes `complete.json`, then `latest` (atomically), then prunes old checkpoints →
    barrier. A crash anywhere before `complete.json` leaves a tag that is never resumed from.
    """
    import torch.distributed as dist
    from deepspeed.checkpoint.constants import (UNIVERSAL_CHECKPOINT_INFO,
                                                UNIVERSAL_CHECKPOINT_VERSION_KEY,
                                                UNIVERSAL_CHECKPOINT_VERSION_VALUE)

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
    if rank == 0:
        _atomic_write(tag_dir / COMPLETE, json.dumps(state.to_dict(), indent=1))
        _atomic_write(root / LATEST, tag)
        prune(root, keep_last)
    dist.barrier()
    return tag_dir


def prune(root: Path, keep_last: int) -> list[Path]:
    """Delete complete checkpoints older than the newest `keep_last` and incomplete ones older
    than `latest`. Never touches `latest` itself. Returns what was deleted."""
    latest = resolve_latest(root)
    if latest is None:
        return []
    latest_step = _step_of(latest)
    complete = [p for p in list_checkpoints(root) if _step_of(p) <= latest_step]
    doomed = complete[:max(0, len(complete) - max(1, keep_last))]
    doomed += [p for p in list_checkpoints(root, complete_only=False)
               if not is_complete(p) and _step_of(p) < latest_step]
    for path in doomed:
        if path != latest:
            shutil.rmtree(path, ignore_errors=True)
    return doomed


# ---------------------------------------------------------------------------- find / check

def resolve_latest(root: Path) -> Path | None:
    """The checkpoint to resume from in `root`: `latest` if it names a complete tag, else the
    newest complete tag (a crash between `complete.json` and `latest`), else None."""
    pointer = root / LATEST
    if pointer.is_file():
        tag_dir = root / pointer.read_text(encoding="utf-8").strip()
        if is_complete(tag_dir):
            return tag_dir
    complete = list_checkpoints(root)
    return complete[-1] if complete else None


def find_resume(run_dir: str | Path, resume: str) -> Path | None:
    """`--resume` → tag directory or None.

    "none" = start fresh; "auto" = `latest` of RUN_DIR/checkpoints (None if there is none);
    a path = a tag directory (must be complete), a checkpoints directory or a run directory.
    """
    if resume == "none":
        return None
    if resume == "auto":
        return resolve_latest(checkpoint_root(run_dir))
    path = Path(resume)
    if not path.exists():
        raise ResumeError(f"--resume {resume}: no such file or directory")
    if _step_of(path) is not None:
        read_client_state(path)  # raises for an incomplete tag
        return path
    for root in (path, path / CHECKPOINTS):
        found = resolve_latest(root)
        if found is not None:
            return found
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
    if saved.zero_stage != current.zero_stage and \
            {saved.zero_stage, current.zero_stage} != {1, 2}:
        raise ResumeError(
            f"{where} was saved with ZeRO stage {saved.zero_stage}; on resume only a switch "
            f"between stages 1 and 2 is supported (their checkpoint layouts match): use --set "
            f"train.zero_stage={saved.zero_stage}")
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
    """ZeRO 1-3 partition optimizer state by rank: another world size (or a 1 ↔ 2 stage
    switch) needs a universal checkpoint. Stage 0 state is not partitioned: any size loads it."""
    if saved.zero_stage == 0 and zero_stage == 0:
        return False
    return saved.world_size != world_size or saved.zero_stage != zero_stage


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
