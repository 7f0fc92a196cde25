"""Training on a DeepSpeed engine: one rank's loop, evaluation, logging and checkpoints, for
any objective (`pretrain.objectives`: the recipe's `objective:` owns data, model, loss parts,
evaluation metrics and FLOPs; nothing here names a method).

The engine owns ZeRO, precision, gradient accumulation, clipping and the LR schedule; the
optimizer is a client `torch.optim.AdamW` (bit-exact resume on CPU, PLATFORM.md). One optimizer
step = `gradient_accumulation_steps` micro-batches of `train_batches`; checkpoints hold the
consumed-sample count and every rank's RNG states, so a resumed run replays nothing and, on the
same world size, continues bit-identically.

Outputs in RUN_DIR: `config.yaml` (resolved config), `metrics.jsonl` (one object per logged step
with step, loss, the objective's parts, lr, tokens/s, MFU; evaluations as objects with `"eval": true`), `tb/`
(TensorBoard), `checkpoints/` (see `pretrain.checkpoint`), `summary.json` (end of each
invocation), `job.lock` (held by rank 0 while the run lives, `pretrain.runlock`). Only rank 0
writes logs.

Every step ends with one all-reduce of two flags: a stop signal on some rank (then every rank
saves and exits 128 + signal; a signal during an evaluation abandons it) and a non-finite loss
on some rank. Steps whose update the engine skipped (non-finite gradients; fp16 overflow) are
counted in `skipped_steps` and left out of the logged means; `train.nonfinite` /
`nonfinite_patience` decide when the run stops instead (exit 3, no new checkpoint).

MFU = flops_per_token(T̄) × non-padding tokens/s ÷ (peak FLOP/s per device × world size), with
T̄ the mean non-padding sequence length of the window and `flops_per_token` from the
objective (6·N + attention terms). Padding is never counted as useful work.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

from pretrain import checkpoint, distributed
from pretrain.config import RunConfig, config_to_dict, deepspeed_config, save_config
from pretrain.runlock import RunDirBusy, RunLock

METRICS = "metrics.jsonl"
#: Test-only fault injection: seconds every optimizer step (and every evaluation batch) sleeps,
#: a slow step / slow node; global steps whose loss is multiplied by NaN on every rank ("3,4").
STEP_SLEEP_S = float(os.environ.get("XPRETRAIN_STEP_SLEEP_S", "0") or 0)
NAN_STEPS = {int(s) for s in os.environ.get("XPRETRAIN_NAN_STEPS", "").split(",") if s.strip()}
EVAL_SLEEP_S = float(os.environ.get("XPRETRAIN_EVAL_SLEEP_S", "0") or 0)  # per eval batch
#: Exit code of a run stopped on non-finite losses / gradients (`train.nonfinite`).
EXIT_NONFINITE = 3
SUMMARY = "summary.json"

#: Dense tensor-core peak TFLOP/s per device (bf16/fp16, fp32 without TF32), vendor data sheets;
#: matched against `torch.cuda.get_device_name()` in this order.
PEAK_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989.4, 66.9), ("H100 PCIe", 756.0, 51.2), ("H100", 989.4, 66.9),
    ("A100", 312.0, 19.5), ("L40S", 362.1, 91.6), ("A10", 125.0, 31.2), ("L4", 121.0, 30.3),
    ("V100", 125.0, 15.7),
)


@dataclass
class RunOptions:
    """Command-line choices that are not part of the run config."""

    resume: str = "auto"
    """"auto" (latest checkpoint of RUN_DIR if any), "none", or a checkpoint path."""
    stop_at_step: int | None = None
    """Save and exit 0 after this global step (a planned pause; the LR schedule is unchanged)."""
    peak_tflops: float | None = None
    """Peak TFLOP/s per device for MFU; None = look the GPU up in `PEAK_TFLOPS`."""


def peak_flops(precision: str, override_tflops: float | None) -> float:
    """Peak FLOP/s of one device; 0 when unknown (CPU, unlisted GPU) → MFU "n/a"."""
    if override_tflops:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return 0.0
    name = torch.cuda.get_device_name()
    for key, low_precision, fp32 in PEAK_TFLOPS:
        if key in name:
            return (fp32 if precision == "fp32" else low_precision) * 1e12
    return 0.0


@contextmanager
def rng_isolated():
    """Run a block without consuming the process's python/numpy/torch RNG streams (DataLoader
    iterators draw a seed from torch's generator; evaluation must not shift dropout masks)."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def format_eta(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds))) if math.isfinite(seconds) else "?"


class MetricsLog:
    """Rank-0 sink: stdout line, `metrics.jsonl`, TensorBoard. No-op on other ranks."""

    def __init__(self, run_dir: Path, start_step: int, active: bool):
        self.active = active
        self.path = run_dir / METRICS
        self.writer = None
        if not active:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1)

    def _truncate_after(self, step: int) -> None:
        """Drop records of steps a resumed run will redo (they came after its checkpoint)."""
        if not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)

    def print(self, message: str) -> None:
        if self.active:
            print(message, flush=True)

    def record(self, record: dict, prefix: str) -> None:
        if not self.active:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class StepWindow:
    """Per-rank sums over the steps since the last log line (kept on the device: no sync)."""

    def __init__(self, objective, device: torch.device):
        self.objective = objective
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.parts = torch.zeros(objective.num_part_sums(), dtype=torch.float64, device=device)
        self.tokens = torch.zeros((), dtype=torch.float64, device=device)  # non-padding
        self.micro_batches, self.sequences, self.steps = 0, 0, 0
        self.lr = 0.0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, parts: dict, batch: dict[str, torch.Tensor]) -> None:
        tokens, sequences = self.objective.batch_counts(batch)
        self.loss += loss.detach().double()
        self.parts += self.objective.part_sums(parts).to(self.parts.device)
        self.tokens += tokens
        self.micro_batches += 1
        self.sequences += sequences

    def snapshot(self) -> tuple:
        return (self.loss.clone(), self.parts.clone(), self.tokens.clone(), self.micro_batches,
                self.sequences)

    def restore(self, snapshot: tuple) -> None:
        """Forget what was added since `snapshot` (a skipped, non-finite step)."""
        loss, parts, tokens, self.micro_batches, self.sequences = snapshot
        self.loss.copy_(loss)
        self.parts.copy_(parts)
        self.tokens.copy_(tokens)

    def pack(self) -> torch.Tensor:
        """[4 + K] float64: loss sum, tokens, micro-batches, sequences, then the K part sums."""
        counts = torch.tensor([self.micro_batches, self.sequences], dtype=torch.float64,
                              device=self.loss.device)
        return torch.cat([self.loss[None], self.tokens[None], counts, self.parts.flatten()])


def next_batch(batches, device: torch.device) -> dict[str, torch.Tensor]:
    """Next micro-batch on `device`, fetched without touching the RNG streams and with stop
    signals held back while loader workers may fork."""
    with rng_isolated(), distributed.stop_signals_deferred():
        batch = next(batches)
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


class GuardedAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW` that skips a step whose gradients are not all finite, for fp32 without
    ZeRO, the one setting where DeepSpeed hands the client optimizer raw gradients (its fp16 /
    bf16 wrappers and ZeRO 1-3 skip non-finite gradient norms themselves, and ZeRO refuses
    optimizer classes it does not know).

    It reports the skip in `overflow`, the attribute DeepSpeed's engine reads after every
    optimizer step to count a skipped step (`engine.skipped_steps`) and hold the LR schedule.
    Costs one fused norm over the gradients and one host sync per optimizer step.
    """

    overflow = False

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        self.overflow = bool(grads) and \
            not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())
        return None if self.overflow else super().step(closure)


def train_step(engine, batches, window: StepWindow, nan: bool = False,
               objective=None, step: int = 0) -> torch.Tensor:
    """One optimizer step: `gradient_accumulation_steps` micro-batches through the engine
    (forward, backward, step — the engine applies the update at the boundary, or skips it when
    the gradients are not finite). Returns this rank's summed loss of the step (on the device,
    not synchronised); `nan` poisons it (fault injection)."""
    if objective is not None:  # e.g. a stage that trains only some parameter groups
        objective.before_step(step, engine.optimizer)
    window.lr = float(engine.optimizer.param_groups[0]["lr"])  # the lr this step uses
    total = torch.zeros((), dtype=torch.float64, device=engine.device)
    for _ in range(engine.gradient_accumulation_steps()):
        batch = next_batch(batches, engine.device)
        loss, parts = engine(**batch, task="loss")
        if nan:
            loss = loss * float("nan")
        engine.backward(loss)
        engine.step()
        window.add(loss, parts, batch)
        total += loss.detach().double()
    window.steps += 1
    return total


class Trainer:
    """One rank of a run (in a process group: `distributed.init()` first).
    `Trainer(cfg, options).train()` → exit code."""

    def __init__(self, cfg: RunConfig, options: RunOptions):
        import deepspeed

        from pretrain.objectives import objective_for

        self.cfg, self.options = cfg, options
        self.objective = objective_for(cfg)
        self.run_dir = Path(cfg.run_dir)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.device = distributed.device()
        self.stop = distributed.StopSignal()

        self.info = self.objective.load_data()
        checkpoint.seed_everything(cfg.train.seed)  # identical init on every rank
        model = self.objective.build_model()
        self.identity = checkpoint.ClientState(
            step=0, consumed_samples=0, world_size=self.world_size,
            zero_stage=cfg.train.zero_stage, data_hash=self.info.manifest_hash,
            data_hashes=dict(self.info.data_hashes),
            model_shapes={name: list(p.shape) for name, p in model.named_parameters()},
            config=config_to_dict(cfg))

        # Checksums verified collectively (a share of the files per rank); damaged tags are
        # skipped under --resume auto (a warning on rank 0), refused when named explicitly.
        resume_from = checkpoint.find_resume(
            self.run_dir, options.resume, check=checkpoint.verify_across_ranks,
            warn=(lambda line: print(line, file=sys.stderr, flush=True)) if self.rank == 0
            else None)
        saved, universal = None, False
        if resume_from is not None:
            saved = checkpoint.read_client_state(resume_from)
            notes = checkpoint.check_compatible(saved, self.identity, resume_from)
            universal = checkpoint.needs_universal(saved, self.world_size, cfg.train.zero_stage)
            if self.rank == 0:
                print(f"resuming from {resume_from} (step {saved.step}, "
                      f"{saved.consumed_samples} samples)" +
                      (f"; changes: {'; '.join(notes)}" if notes else ""), flush=True)
            if universal:
                if self.rank == 0:
                    checkpoint.prepare_universal(resume_from)
                distributed.barrier()

        raw_grads = cfg.train.zero_stage == 0 and cfg.train.precision == "fp32"
        optimizer = (GuardedAdamW if raw_grads else torch.optim.AdamW)(
            self.objective.param_groups(model), lr=cfg.optim.lr,
            betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
        ds_config = deepspeed_config(cfg, self.world_size, load_universal=universal)
        ds_logger = logging.getLogger("DeepSpeed")
        level = ds_logger.level
        ds_logger.setLevel(logging.ERROR)  # its init asks the scheduler for an lr too early
        try:
            self.engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                                   config=ds_config)
        finally:
            ds_logger.setLevel(level)
        self.grad_accum = self.engine.gradient_accumulation_steps()

        self.step, self.consumed = 0, 0
        if saved is not None:
            same_ranks = saved.world_size == self.world_size
            checkpoint.load(self.engine, resume_from, universal=universal,
                            restore_rng_state=same_ranks)
            if not same_ranks:  # the saved dropout streams belong to other ranks: fresh ones
                checkpoint.seed_everything(cfg.train.seed + 7919 * saved.step + self.rank + 1)
            self.step, self.consumed = saved.step, saved.consumed_samples
            scheduler = self.engine.lr_scheduler
            if hasattr(scheduler, "last_batch_iteration"):  # lr from *this* config's schedule
                scheduler.step(scheduler.last_batch_iteration)
            if self.engine.global_steps != self.step:
                raise checkpoint.ResumeError(
                    f"{resume_from}: DeepSpeed restored global step {self.engine.global_steps} "
                    f"but our client state says {self.step}; the checkpoint is inconsistent")
        else:
            checkpoint.seed_everything(cfg.train.seed + 1 + self.rank)
            # DeepSpeed's Warmup*LR start at iteration -1 and the engine steps them after each
            # update, so steps 1 and 2 would both run at min_lr: start at iteration 0 instead.
            scheduler = self.engine.lr_scheduler
            if getattr(scheduler, "last_batch_iteration", None) == -1:
                scheduler.step()
        self.saved_step = self.step if saved is not None else -1

        self.log = MetricsLog(self.run_dir, self.step, active=self.rank == 0)
        if self.rank == 0:
            save_config(cfg, self.run_dir / "config.yaml")
            self.log.print(self.objective.describe_data())
            self.log.print(f"world size {self.world_size}, ZeRO {cfg.train.zero_stage}, "
                           f"{cfg.train.precision}, micro {cfg.train.micro_batch_size} × "
                           f"accumulation {self.grad_accum} × ranks = global "
                           f"{cfg.train.global_batch_size}; steps {self.step} → "
                           f"{cfg.train.train_steps}")
        self.peak = peak_flops(cfg.train.precision, options.peak_tflops)
        self.nonfinite_run = 0  # consecutive steps with non-finite loss / gradients
        self.last_eval: dict | None = None
        self._reset_window()

    # ------------------------------------------------------------------ loop
    def train(self) -> int:
        """Run until train_steps, stop_at_step or a stop signal; returns the exit code."""
        cfg, t = self.cfg, self.cfg.train
        self.stop.install()  # before the loader's workers fork, so they inherit it
        batches = self.objective.train_batches(self.rank, self.world_size, self.consumed)
        code = distributed.EXIT_OK
        stop_at = self.options.stop_at_step
        with closing(batches):
            while self.step < t.train_steps and (stop_at is None or self.step < stop_at):
                skipped_before, window_before = self.engine.skipped_steps, self.window.snapshot()
                step_loss = self._train_step(batches)
                stopping, nan_loss = distributed.any_ranks(self.stop.requested,
                                                       ~torch.isfinite(step_loss))
                skipped = self.engine.skipped_steps > skipped_before
                if skipped or nan_loss:  # keep the step out of the logged means
                    self.window.restore(window_before)
                diverged = self._count_nonfinite(skipped=skipped, nan_loss=nan_loss)
                planned = stop_at is not None and self.step >= stop_at
                last = self.step == t.train_steps or stopping or planned or diverged
                if self.step % t.log_every == 0 or last:
                    self._log_window()
                if diverged:
                    code = EXIT_NONFINITE
                    if self.rank == 0:
                        print(f"error: {diverged}", file=sys.stderr, flush=True)
                    break
                due_eval = t.eval_every and self.step % t.eval_every == 0
                if due_eval and not stopping and self.evaluate() is None:
                    stopping = last = True  # a signal stopped the evaluation
                if (t.save_every and self.step % t.save_every == 0) or last:
                    try:
                        self.save()
                    except checkpoint.NonFiniteWeights as err:  # every rank raises it
                        code = EXIT_NONFINITE
                        if self.rank == 0:
                            last = checkpoint.resolve_latest(
                                checkpoint.checkpoint_root(self.run_dir))
                            print(f"error: {err}; stopping (the last checkpoint is {last})",
                                  file=sys.stderr, flush=True)
                        break
                if stopping:
                    code = self.stop.exit_code if self.stop.requested else 128 + 15
                    break
                if planned:
                    break
        self.stop.uninstall()
        self._write_summary(code)
        self.log.close()
        return code

    def _train_step(self, batches) -> torch.Tensor:
        loss = train_step(self.engine, batches, self.window, nan=self.step + 1 in NAN_STEPS,
                          objective=self.objective, step=self.step + 1)
        if STEP_SLEEP_S:  # fault injection for the tests: a slow step
            time.sleep(STEP_SLEEP_S)
        self.step += 1
        self.consumed += self.cfg.train.global_batch_size
        return loss

    def _count_nonfinite(self, *, skipped: bool, nan_loss: bool) -> str | None:
        """Book-keep a step's non-finite verdict; returns why the run must stop, or None.

        `skipped`: the engine skipped the update (non-finite gradients; under fp16 also a loss
        scale overflow), the same on every rank. `nan_loss`: some rank's loss was not finite."""
        t = self.cfg.train
        if not (skipped or nan_loss):
            self.nonfinite_run = 0
            return None
        self.nonfinite_run += 1
        last = checkpoint.resolve_latest(checkpoint.checkpoint_root(self.run_dir))
        advice = (f"the last checkpoint is {last}" if last else "no checkpoint was saved") + \
            "; lower optim.lr or check the data, then resume"
        if nan_loss and not skipped:
            return (f"step {self.step}: non-finite loss but the update was applied; stopping "
                    f"without saving ({advice})")
        if nan_loss and t.nonfinite == "stop":
            return (f"step {self.step}: non-finite loss (train.nonfinite=stop); the update was "
                    f"skipped; stopping without saving ({advice})")
        if self.nonfinite_run >= t.nonfinite_patience:
            return (f"step {self.step}: {self.nonfinite_run} steps in a row had non-finite "
                    f"losses or gradients and were skipped (train.nonfinite_patience="
                    f"{t.nonfinite_patience}); stopping without saving ({advice})")
        self.log.print(f"warning: step {self.step}: non-finite "
                       f"{'loss' if nan_loss else 'gradients'}, update skipped "
                       f"({self.nonfinite_run} in a row, {self.engine.skipped_steps} in all)")
        return None

    def _reset_window(self) -> None:
        self.window = StepWindow(self.objective, self.device)

    def _log_window(self) -> None:
        window = self.window
        if window.steps == 0:
            return
        packed = distributed.all_reduce_sum(window.pack())
        loss_sum, tokens, micro, sequences = packed[:4].tolist()
        if micro == 0:  # every step of the window was skipped as non-finite
            record = {"step": self.step, "loss": None, "lr": window.lr,
                      "consumed_samples": self.consumed,
                      "skipped_steps": int(self.engine.skipped_steps)}
            self.log.record(record, "train")
            self.log.print(f"step {self.step}/{self.cfg.train.train_steps} | skipped "
                           f"(non-finite), {record['skipped_steps']} in all")
            self._reset_window()
            return
        parts = self.objective.summarize(packed[4:])
        elapsed = time.perf_counter() - window.started
        step_time = elapsed / window.steps
        tokens_per_s = tokens / elapsed
        mean_len = tokens / max(sequences, 1.0)
        flops = self.objective.flops_per_token(self.engine.module, int(round(mean_len)))
        mfu = flops * tokens_per_s / (self.peak * self.world_size) if self.peak else None
        remaining = (self.cfg.train.train_steps - self.step) * step_time
        record = {"step": self.step, "loss": loss_sum / micro, "lr": window.lr,
                  "tokens_per_s": tokens_per_s, "samples_per_s": sequences / elapsed,
                  "step_time_s": step_time, "mfu": mfu, "consumed_samples": self.consumed}
        record.update({k: v for k, v in parts.items() if k != "loss"})
        record["skipped_steps"] = int(self.engine.skipped_steps)  # non-finite (fp16: overflow)
        self.log.record(record, "train")
        self.log.print(
            f"step {self.step}/{self.cfg.train.train_steps} | loss {record['loss']:.4f} "
            f"{self.objective.log_text(parts)} | lr {window.lr:.3e} | "
            f"{tokens_per_s:,.0f} tok/s | MFU {'n/a' if mfu is None else f'{100 * mfu:.1f}%'} | "
            f"ETA {format_eta(remaining)}" +
            (f" | skipped {record['skipped_steps']}" if record["skipped_steps"] else ""))
        self._reset_window()

    # ------------------------------------------------------------------ eval / save
    @torch.no_grad()
    def evaluate(self) -> dict | None:
        """The objective's metrics on its held-out split, summed over ranks; None when a stop
        signal ended it early (the caller saves and exits). Consumes no RNG; every rank runs the
        same number of batches."""
        started = time.perf_counter()
        limit = self.cfg.train.eval_batches
        sums = None
        self.engine.eval()
        with rng_isolated(), closing(self.objective.eval_batches(self.rank, self.world_size)) \
                as batches:
            done, stopped = 0, False
            while not limit or done < limit:
                with rng_isolated(), distributed.stop_signals_deferred():
                    batch = next(batches, None)
                exhausted, stopped = distributed.any_ranks(batch is None, self.stop.requested)
                if exhausted or stopped:  # ZeRO-3: ranks move in lockstep
                    break
                batch = {k: v.to(self.device) for k, v in batch.items()}
                if EVAL_SLEEP_S:
                    time.sleep(EVAL_SLEEP_S)
                found = self.objective.eval_batch(self.engine, batch).to(self.device)
                sums = found if sums is None else sums + found
                done += 1
        self.engine.train()
        if stopped:
            self.log.print(f"evaluation at step {self.step} stopped by a signal after {done} "
                           f"batches (not recorded)")
            self.window.started += time.perf_counter() - started
            return None
        if sums is None:  # no held-out batch (the same on every rank: exhaustion is collective)
            self.log.print(f"eval step {self.step} | no held-out batches")
            self.window.started += time.perf_counter() - started
            return {"step": self.step, "eval": True, "eval_batches_per_rank": 0}
        packed = distributed.all_reduce_sum(sums)
        result = {"step": self.step, "eval": True, **self.objective.summarize_eval(packed),
                  "eval_batches_per_rank": done}
        self.log.record(result, "eval")
        self.log.print(f"eval step {self.step} | {self.objective.eval_text(result)}"
                       f" | {time.perf_counter() - started:.1f}s")
        self.last_eval = result
        self.window.started += time.perf_counter() - started  # keep eval out of tokens/s
        return result

    def save(self) -> Path:
        """Checkpoint the current step on all ranks (once per step)."""
        tag_dir = checkpoint.checkpoint_root(self.run_dir) / checkpoint.tag_for_step(self.step)
        if self.saved_step == self.step:
            return tag_dir
        started = time.perf_counter()
        state = checkpoint.ClientState(**{**self.identity.to_dict(), "step": self.step,
                                          "consumed_samples": self.consumed})
        checkpoint.save(self.engine, self.run_dir, state, self.cfg.train.keep_last)
        self.saved_step = self.step
        seconds = time.perf_counter() - started
        self.log.print(f"saved checkpoint {tag_dir} ({seconds:.1f}s)")
        self.window.started += seconds
        return tag_dir

    def _write_summary(self, code: int) -> None:
        if self.rank != 0:
            return
        losses = []
        path = self.run_dir / METRICS
        if path.is_file():
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                       if line.strip()]
            losses = [(r["step"], r["loss"]) for r in records if not r.get("eval") and r.get("loss") is not None]
        summary = {
            "step": self.step, "train_steps": self.cfg.train.train_steps,
            "finished": self.step >= self.cfg.train.train_steps, "exit_code": code,
            "first_loss": losses[0][1] if losses else None,
            "last_loss": losses[-1][1] if losses else None,
            "checkpoint": str(checkpoint.resolve_latest(checkpoint.checkpoint_root(self.run_dir))),
            "eval": self.last_eval,
        }
        (self.run_dir / SUMMARY).write_text(json.dumps(summary, indent=1), encoding="utf-8")
        self.log.print(
            f"{'finished' if summary['finished'] else 'stopped'} at step {self.step}: loss "
            f"{summary['first_loss']} (first logged) → {summary['last_loss']} (last); checkpoint "
            f"{summary['checkpoint']}")


def run(cfg: RunConfig, options: RunOptions) -> int:
    """Train one rank (after `config.validate`); returns the process exit code."""
    distributed.init(cfg.train.collective_timeout_s)
    lock = take_run_lock(cfg.run_dir)
    try:
        return Trainer(cfg, options).train()
    finally:
        sys.stdout.flush()
        if lock is not None:
            lock.release()


def take_run_lock(run_dir: str) -> RunLock | None:
    """Rank 0 takes RUN_DIR's lock before anything there is read or written (collective: every
    rank raises `RunDirBusy` when it is held by another live job)."""
    lock = busy = None
    if distributed.rank() == 0:
        try:
            lock = RunLock(run_dir).acquire()
        except RunDirBusy as err:
            busy = err
    if distributed.any_rank(busy is not None):
        raise busy or RunDirBusy(f"{run_dir} is in use by another job")
    return lock
