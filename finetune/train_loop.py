"""The fine-tuning loop of both forms (`finetune.run --form mrc|standard`) in plain PyTorch, and
the mPMR model pieces of the MRC form.

* `train` — one loop for any items: a seeded shuffle per epoch (optionally of whole groups, the
  pairs of the MRC form), micro-batches collated and padded to their longest sequence, the
  encoder under optional `torch.autocast` (bf16 / fp16 on CUDA; the loss stays fp32), AdamW (no
  decay on biases / LayerNorm), linear warmup and decay, gradient clipping, the grad-accum
  weighting of the micro-batch losses and the logged records. `finetune.standard.fine_tune`
  runs it with the stock heads' cross-entropies, `train_mrc` with `span_loss`.
* `infer` — outputs of the model on items batched by length, in input order (both forms).
* `load_model` — an `MPMRForSpanExtraction` folder (`pretrain.convert_to_hf` output), or a plain
  XLM-R folder whose encoder is loaded and whose extractor is freshly initialised (the baseline);
  encoder and extractor dropout set to `dropout` (PMR train-*.py `--drop` 0.1 → hidden dropout).
* `collate` — features → padded batch in `pretrain.data.MRCCollator`'s layout plus `relevant`
  [B] (the Z_00 target of pair tasks).
* `span_loss` — the reference's fine-tuning loss: BCE with logits, summed over the cells that
  enter it and divided by their number in the batch (PMR */model.py compute_loss). Which cells is
  the reference's `label_mask`: `"context"` (EQA, NER, ABSA; PMR QA/mQA/data.py,
  NER/mNER/data.py, ABSA/mABSA/data.py) = every context cell i ≤ j, target 1 at the gold spans,
  never the [CLS] row or Z_00; `"cls"` (pair tasks; PMR NLI/mNLI/data.py `[1] + [0] * …`) = Z_00
  alone, target `relevant`. With grad_accum > 1 the MRC step loss is the size-weighted mean of
  the micro-batch means.
* `feature_logits` — the span logits of each feature, [n, n] float32 numpy per feature.

Never imports DeepSpeed (`pretrain.model` and `pretrain.data` do not either).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from finetune.mrc_form import MRCFeature
from pretrain.data import MRCCollator
from pretrain.model import param_groups, span_logits, span_targets

LOSS_CELLS = ("context", "cls")
REDUCTIONS = ("mean", "sum")
Item = TypeVar("Item")  # a training / inference item: MRCFeature, standard.Window


@dataclass
class TrainOptions:
    """Optimisation settings (defaults of `finetune.run` fill these per task)."""

    epochs: float = 3.0
    """Passes over the training items (fractions allowed: 0.5 = half the steps of one)."""
    lr: float = 3e-5
    """Peak learning rate, reached after warmup and decayed linearly to 0."""
    batch_size: int = 64
    """Items (or groups, see `train`) per optimizer step (= micro_batch_size × grad_accum)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step; batch_size must be divisible by it."""
    warmup_ratio: float = 0.06
    """Fraction of all optimizer steps spent warming up linearly from 0."""
    weight_decay: float = 0.0
    """AdamW decay on weight matrices (biases and LayerNorm never decay)."""
    adam_eps: float = 1e-8
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (≤ 0: no clipping)."""
    seed: int = 42
    log_every: int = 10
    """Log the loss every N optimizer steps (and always at the first and the last)."""

    @classmethod
    def from_settings(cls, settings: dict, **overrides) -> "TrainOptions":
        """From a `finetune.run` settings dict (epochs, lr, batch_size, warmup_ratio,
        weight_decay, seed; grad_accum, log_every, max_grad_norm where present)."""
        values = dict(epochs=settings["epochs"], lr=settings["lr"],
                      batch_size=int(settings["batch_size"]),
                      grad_accum=int(settings.get("grad_accum") or 1),
                      warmup_ratio=settings["warmup_ratio"],
                      weight_decay=settings["weight_decay"], seed=settings["seed"],
                      log_every=int(settings.get("log_every") or 10))
        if settings.get("max_grad_norm") is not None:
            values["max_grad_norm"] = settings["max_grad_norm"]
        if settings.get("adam_betas") is not None:
            values["adam_betas"] = tuple(settings["adam_betas"])
        return cls(**{**values, **overrides})


# ---------------------------------------------------------------------------- model

def load_model(path: str | Path, *, extractor_size: int = 1024, dropout: float | None = None):
    """`MPMRForSpanExtraction` from a Hugging Face folder, on CPU.

    A folder exported by `pretrain.convert_to_hf` loads whole. A plain XLM-R folder (e.g. an
    official `xlm-roberta-base` download: `model_type` "xlm-roberta") loads its encoder and gets
    a fresh extractor of `extractor_size` (PMR `--projection_intermediate_hidden_size` 1024; seed
    torch first for a reproducible initialisation). `dropout` (None: the folder's) sets the
    encoder's hidden dropout and the extractor's, as PMR sets `config.hidden_dropout_prob`.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--model {path}: no config.json — pass a folder written by "
                                "`python -m pretrain.convert_to_hf` or an xlm-roberta folder")
    from pretrain.hf_mpmr import MPMRConfig, MPMRForSpanExtraction

    raw = json.loads(config_file.read_text(encoding="utf-8"))
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout,
                                            "extractor_dropout": dropout}
    if raw.get("model_type") == MPMRConfig.model_type or "extractor_size" in raw:
        return MPMRForSpanExtraction.from_pretrained(path, **overrides)
    if raw.get("model_type") != "xlm-roberta":
        raise ValueError(f"--model {path}: model_type {raw.get('model_type')!r} is neither "
                         f"{MPMRConfig.model_type!r} nor 'xlm-roberta'")
    from transformers import XLMRobertaConfig, XLMRobertaModel

    encoder_config = XLMRobertaConfig.from_pretrained(path)
    fields = {k: v for k, v in encoder_config.to_dict().items()
              if k not in ("model_type", "architectures", "transformers_version")}
    config = MPMRConfig(**{**fields, **overrides}, extractor_size=extractor_size)
    model = MPMRForSpanExtraction(config)
    encoder = XLMRobertaModel.from_pretrained(path, add_pooling_layer=False)
    missing, unexpected = encoder_module(model).load_state_dict(encoder.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"--model {path}: encoder weights do not fit (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model


def encoder_module(model) -> torch.nn.Module:
    """The XLM-R encoder inside an `MPMRForSpanExtraction`."""
    return getattr(model, model.base_model_prefix)


def max_positions(model) -> int:
    """Longest input the model's position embeddings allow (XLM-R starts at pad_id + 1)."""
    config = model.config
    return int(config.max_position_embeddings) - int(config.pad_token_id or 0) - 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


def pick_precision(name: str, device: torch.device) -> str:
    """"auto" → bf16 on CUDA devices that support it, else fp32; bf16/fp16 need CUDA."""
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name != "fp32" and device.type != "cuda":
        raise ValueError(f"--precision {name} needs a CUDA device (got {device}); use fp32")
    return name


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------- batches

def collate(features: Sequence[MRCFeature], pad_id: int, max_seq_len: int) -> dict[str, Tensor]:
    """Features → `MRCCollator` batch (input_ids / attention_mask [B, T], context_start /
    context_end [B], answer_spans [N, 3], answer_counts [B], lang_id [B] = 0) plus relevant [B]
    float32 (1.0 where Z_00's target is 1)."""
    batch = MRCCollator(pad_id, max_seq_len)([(0, f.to_mrc_example()) for f in features])
    batch["relevant"] = torch.tensor([float(f.relevant) for f in features])
    return batch


def _to(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _forward(model, batch: dict[str, Tensor]):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def span_loss(q: Tensor, k: Tensor, batch: dict[str, Tensor], cells: str = "context") -> Tensor:
    """Fine-tuning loss from q = FFN(H), k = H [B, T, h] (module docstring: which cells), fp32
    scalar (fp64 for fp64 inputs): the sum of the cells' BCE with logits / the number of cells."""
    if cells == "cls":
        dtype = torch.promote_types(q.dtype, torch.float32)
        z00 = (q[:, 0].to(dtype) * k[:, 0].to(dtype)).sum(-1)  # [B] = span_logits(q, k)[:, 0, 0]
        return F.binary_cross_entropy_with_logits(z00, batch["relevant"].to(z00))
    if cells != "context":
        raise ValueError(f"loss cells must be one of {LOSS_CELLS}, got {cells!r}")
    logits = span_logits(q, k)  # [B, T, T]
    size, length = logits.shape[:2]
    positions = torch.arange(length, device=logits.device)
    inside = ((positions >= batch["context_start"][:, None])
              & (positions < batch["context_end"][:, None]))  # [B, T]
    cells_mask = inside[:, :, None] & inside[:, None, :] & torch.ones(
        length, length, dtype=torch.bool, device=logits.device).triu()  # [B, T, T]
    target = span_targets(batch["answer_spans"], size, length, logits.device)
    cell_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return cell_loss[cells_mask].sum() / cells_mask.sum().clamp_min(1)


# ---------------------------------------------------------------------------- training

def train(model, items: Sequence[Item], options: TrainOptions, *,
          collate_fn: Callable[[Sequence[Item]], dict[str, Tensor]],
          loss_fn: Callable[[object, dict[str, Tensor]], Tensor], device: torch.device,
          precision: str = "fp32", log: Callable[[dict], None] | None = None,
          groups: Sequence[str] | None = None,
          units_fn: Callable[[Sequence[Item]], int] = len, reduction: str = "mean") -> list[dict]:
    """Fine-tune `model` in place on `items` (the loop of both forms); returns the logged records
    `{"step", "epoch", "loss", "lr", "seconds"}` (loss = mean over the steps since the last
    record). Deterministic for a given seed on CPU (seed torch first where dropout matters).

    `collate_fn(items)` → a batch with input_ids / attention_mask [B, T] (and the targets); the
    encoder runs `model(input_ids=…, attention_mask=…)` under `autocast`, then
    `loss_fn(output, batch)` → fp32 scalar outside it. Grad-accum weighting: with
    `reduction="mean"` the loss is the micro-batch's mean and the step loss the micro-batch means
    weighted by their share of the step's `units_fn` units; with "sum" it is the sum over the
    micro-batch's units and the step loss that sum over the step's units (exactly the full-batch
    mean). `units_fn` defaults to the number of items.

    `groups` (optional, one id per item, e.g. the pair a label query belongs to): batches then
    hold whole groups and `batch_size` / `grad_accum` count groups — the reference's unit for pair
    tasks, whose per-GPU batch is that many pairs with every label query of each
    (PMR NLI/mNLI/utils.py collate_to_max_length_roberta: [batch, choice, L])."""
    if not items:
        raise ValueError("no training features")
    if groups is not None and len(groups) != len(items):
        raise ValueError(f"{len(groups)} group ids for {len(items)} features")
    if options.batch_size < 1 or options.grad_accum < 1 or options.batch_size % options.grad_accum:
        raise ValueError(f"--batch-size {options.batch_size} must be a positive multiple of "
                         f"--grad-accum {options.grad_accum}")
    if options.epochs <= 0:
        raise ValueError(f"--epochs must be positive, got {options.epochs}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    micro = options.batch_size // options.grad_accum
    units = _units(len(items), groups)
    steps_per_epoch = math.ceil(len(units) / options.batch_size)
    total_steps = max(1, round(steps_per_epoch * options.epochs))
    warmup = int(options.warmup_ratio * total_steps)

    from transformers import get_linear_schedule_with_warmup

    model.to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, options.weight_decay), lr=options.lr,
                                  eps=options.adam_eps, betas=options.adam_betas)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    records: list[dict] = []
    window: list[float] = []
    start = time.perf_counter()
    for step, batches in enumerate(_step_batches(items, units, options, micro, total_steps), 1):
        step_loss = 0.0
        counts = [units_fn(chunk) for chunk in batches]
        step_units = sum(counts)
        for chunk, count in zip(batches, counts):
            batch = _to(collate_fn(chunk), device)
            with autocast(device, precision):
                output = _forward(model, batch)
            loss = loss_fn(output, batch)
            loss = loss * (count / step_units) if reduction == "mean" else loss / max(step_units, 1)
            scaler.scale(loss).backward()
            step_loss += float(loss.detach())
        if options.max_grad_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(step_loss):
            raise FloatingPointError(f"loss is {step_loss} at step {step}; lower --lr or use "
                                     "--precision fp32")
        window.append(step_loss)
        if step == 1 or step % max(1, options.log_every) == 0 or step == total_steps:
            record = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                      "loss": sum(window) / len(window), "lr": lr,
                      "seconds": round(time.perf_counter() - start, 2)}
            records.append(record)
            window = []
            if log is not None:
                log(record)
    model.eval()
    return records


def train_mrc(model, features: Sequence[MRCFeature], options: TrainOptions, *, pad_id: int,
              max_seq_len: int, device: torch.device, precision: str = "fp32",
              log: Callable[[dict], None] | None = None, groups: Sequence[str] | None = None,
              loss_cells: str = "context") -> list[dict]:
    """`train` on MRC features: `collate`, `span_loss` over `loss_cells` ("context": span tasks,
    "cls": Z_00 alone, pair tasks), the step loss the feature-weighted mean of the micro-batch
    losses. Returns `train`'s records."""
    if loss_cells not in LOSS_CELLS:
        raise ValueError(f"loss_cells must be one of {LOSS_CELLS}, got {loss_cells!r}")
    return train(model, features, options,
                 collate_fn=lambda chunk: collate(chunk, pad_id, max_seq_len),
                 loss_fn=lambda out, batch: span_loss(out.query_states, out.last_hidden_state,
                                                      batch, loss_cells),
                 device=device, precision=precision, log=log, groups=groups)


def _units(count: int, groups: Sequence[str] | None) -> list[list[int]]:
    """Item indices per batching unit: one item each, or each group's (first-seen order)."""
    if groups is None:
        return [[i] for i in range(count)]
    units: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        units.setdefault(group, []).append(i)
    return list(units.values())


def _step_batches(items: Sequence[Item], units: list[list[int]], options: TrainOptions,
                  micro: int, total_steps: int) -> Iterator[list[list[Item]]]:
    """Optimizer steps as lists of micro-batches of `micro` units each; a fresh seeded
    permutation of the units per epoch."""
    generator = torch.Generator().manual_seed(options.seed)
    step = 0
    while True:
        order = torch.randperm(len(units), generator=generator).tolist()
        for first in range(0, len(order), options.batch_size):
            chosen = order[first:first + options.batch_size]
            yield [[items[i] for u in chosen[k:k + micro] for i in units[u]]
                   for k in range(0, len(chosen), micro)]
            step += 1
            if step == total_steps:
                return


# ---------------------------------------------------------------------------- inference

@torch.no_grad()
def infer(model, items: Sequence[Item], *,
          collate_fn: Callable[[Sequence[Item]], dict[str, Tensor]],
          read_fn: Callable[[object, Sequence[Item]], list], device: torch.device,
          precision: str = "fp32", batch_size: int = 64) -> list:
    """`read_fn(output, chunk)` (one result per item of the chunk) for every item, in input
    order. Items (with `input_ids`) are batched by length so that padding stays small; the
    encoder runs under `autocast`, `read_fn` outside it."""
    model.to(device).eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    out: list = [None] * len(items)
    for first in range(0, len(order), batch_size):
        index = order[first:first + batch_size]
        chunk = [items[i] for i in index]
        batch = _to(collate_fn(chunk), device)
        with autocast(device, precision):
            output = _forward(model, batch)
        for i, result in zip(index, read_fn(output, chunk)):
            out[i] = result
    return out


def feature_logits(model, features: Sequence[MRCFeature], *, pad_id: int, max_seq_len: int,
                   device: torch.device, precision: str = "fp32",
                   batch_size: int = 64) -> list[np.ndarray]:
    """Span logits Z [n, n] float32 (n = len(feature.input_ids)) per feature, in input order."""
    def read(encoded, chunk: Sequence[MRCFeature]) -> list[np.ndarray]:
        logits = span_logits(encoded.query_states, encoded.last_hidden_state)  # [B, T, T] fp32
        logits = logits.float().cpu().numpy()
        return [logits[row, :len(f.input_ids), :len(f.input_ids)].copy()
                for row, f in enumerate(chunk)]

    return infer(model, features, collate_fn=lambda chunk: collate(chunk, pad_id, max_seq_len),
                 read_fn=read, device=device, precision=precision, batch_size=batch_size)
