"""Pretraining objectives as plug-ins: what one method owns, so the trainer names none.

An `Objective` owns its data streams and their blend, its collator (inside its batches), its
model, its loss and the named parts of it, its evaluation metrics, its FLOPs per token and its
export; `pretrain.trainer` owns the loop, the DeepSpeed engine, precision, checkpoints, exact
resume, signals, logging and the evaluation cadence. A recipe picks one with `objective: NAME`
(compare torchtitan's `TrainSpec` registry). Objectives are imported lazily: `pretrain.config`
stays cheap to import.

The contract the trainer relies on (see `Objective` for each method):
  * `engine(**batch, task="loss")` → `(loss, parts)`: a scalar to back-propagate and a dict of
    detached tensors that `part_sums` turns into a fixed-size float64 vector (summed over
    micro-batches and ranks, then `summarize`d into the logged means);
  * `eval_batch(engine, batch)` → a fixed-size float64 vector of sums for `summarize_eval`;
  * `train_batches(...)` is infinite and starts exactly at a consumed-sample count (= steps done
    × train.global_batch_size), so resuming replays nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from torch import Tensor, nn

from pretrain.config import OBJECTIVES, ConfigError, RunConfig

_MODULES = {"mpmr": "pretrain.objectives.mpmr:MPMRObjective",
            "veco": "pretrain.objectives.veco:VecoObjective",
            "mglm": "pretrain.objectives.mglm:MglmObjective"}
assert set(_MODULES) == set(OBJECTIVES)


class Objective:
    """Base class; subclasses implement everything that raises NotImplementedError."""

    name = ""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.info = None  # set by `load_data`

    # ------------------------------------------------------------ before any worker
    def validate(self, world_size: int) -> None:
        """Method-specific checks of the config, data folders and model source (ConfigError)."""
        raise NotImplementedError

    # ------------------------------------------------------------ data
    def load_data(self):
        """Read manifests and indexes (after `validate`); sets and returns `self.info`, which has
        `manifest_hash` (str), `data_hashes` ({name: hash}) and `tokenizer` (manifest block)."""
        raise NotImplementedError

    def describe_data(self) -> str:
        """The start-up log line about the data (sizes and blend weights)."""
        raise NotImplementedError

    def train_batches(self, rank: int, world_size: int,
                      consumed_samples: int) -> Iterator[dict[str, Tensor]]:
        raise NotImplementedError

    def eval_batches(self, rank: int, world_size: int) -> Iterator[dict[str, Tensor]]:
        """Finite; every rank yields the same number of batches."""
        raise NotImplementedError

    # ------------------------------------------------------------ model and optimizer
    def build_model(self) -> nn.Module:
        """The training module (seed torch before calling for a reproducible init)."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module) -> list[dict]:
        from pretrain.model import param_groups

        return param_groups(model, self.cfg.optim.weight_decay)

    def before_step(self, step: int, optimizer) -> None:
        """Called before optimizer step `step` (1-based) runs, after the LR schedule set its lr."""

    # ------------------------------------------------------------ metrics
    def batch_counts(self, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """(non-padding tokens the step processes, as a tensor on the batch's device; sequences)."""
        mask = batch["attention_mask"]
        return mask.sum(), int(mask.shape[0])

    def num_part_sums(self) -> int:
        raise NotImplementedError

    def part_sums(self, parts: dict[str, Tensor]) -> Tensor:
        """A micro-batch's loss parts → float64 [num_part_sums()] sums (all-reduce-able)."""
        raise NotImplementedError

    def summarize(self, sums: Tensor) -> dict[str, float]:
        """Summed parts → the logged means (keys go to metrics.jsonl and TensorBoard)."""
        raise NotImplementedError

    def log_text(self, summary: dict[str, float]) -> str:
        """What the log line shows after the total loss (parts, per-language losses)."""
        raise NotImplementedError

    def eval_batch(self, engine, batch: dict[str, Tensor]) -> Tensor:
        """One held-out micro-batch → float64 sums (fixed size)."""
        raise NotImplementedError

    def summarize_eval(self, sums: Tensor) -> dict[str, float]:
        raise NotImplementedError

    def eval_text(self, result: dict[str, float]) -> str:
        raise NotImplementedError

    def flops_per_token(self, model: nn.Module, mean_len: int) -> float:
        """Training FLOPs per counted token (`batch_counts`) at mean sequence length T."""
        raise NotImplementedError


def objective_for(cfg: RunConfig) -> Objective:
    """The objective a recipe names (`objective:`); ConfigError for an unknown name."""
    if cfg.objective not in _MODULES:
        raise ConfigError(f"objective: {cfg.objective!r} is not one of {', '.join(OBJECTIVES)}")
    module, _, cls = _MODULES[cfg.objective].partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
