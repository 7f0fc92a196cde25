"""Our training step vs a bare PyTorch loop, side by side in one process.

    python bench/train_step.py [--zero 0 2] [--hidden 256 --layers 4 --batch 8 --seq 128]
                               [--steps 5 --rounds 5] [--threads 1] [--peak-tflops X]

"ours" = `pretrain.trainer.train_step` on a single-rank DeepSpeed engine (client
`torch.optim.AdamW`, gradient clipping, WarmupDecayLR owned by the engine, ZeRO stage as given,
fp32), including its per-micro-batch bookkeeping (RNG isolation, signal mask, device copy, loss
parts per language) and the per-step stop-flag all-reduce of the real loop. "bare" = the same
model (same initial weights), same batch, same AdamW, clipping and a LambdaLR schedule in a
plain `loss.backward(); clip; opt.step(); sched.step(); zero_grad()` loop. Rounds alternate
between the variants (5 timed steps each after warm-up) and the median round is reported, which
keeps a shared machine's noise out of the ratio.

MFU (printed when --peak-tflops is given; the trainer looks GPUs up in a table):

    MFU = flops_per_token(T̄) × non-padding tokens per second / (peak FLOP/s × devices)

with `pretrain.model.flops_per_token(model, T̄) = 6·N + 12·L·h·T̄ + 6·h·T̄` (N non-embedding
parameters, L layers, h hidden size, T̄ mean non-padding sequence length): forward + backward
matmul FLOPs of the encoder, attention scores and the span logits. Padding tokens are not useful
work and are never counted.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DS_ACCELERATOR", "cpu")


def make_batch(batch: int, seq: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A collated MRC micro-batch (shapes as `pretrain.data.MRCCollator`), ~10 % padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(int(seq * 0.8), seq + 1, (batch,), generator=g)
    lengths[0] = seq
    input_ids = torch.randint(4, vocab - 1, (batch, seq), generator=g)
    attention_mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, 1)
    input_ids[:, 0] = 0
    context_start = torch.full((batch,), seq // 4)
    context_end = lengths - 1
    spans = [[b, int(context_start[b]) + 2, int(context_start[b]) + 4] for b in range(0, batch, 2)]
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "context_start": context_start, "context_end": context_end,
            "answer_spans": torch.tensor(spans), "answer_counts": (torch.arange(batch) % 2 == 0)
            .long(), "lang_id": torch.arange(batch) % 2}


def run_config(args, zero_stage: int):
    from pretrain.config import load_config

    return load_config(None, [
        f"train.zero_stage={zero_stage}", "train.precision=fp32",
        f"train.global_batch_size={args.batch}", f"train.micro_batch_size={args.batch}",
        "train.train_steps=1000", "optim.lr=1e-4", "optim.warmup_steps=10", "optim.clip_grad=1.0",
        "model.init_from=tiny", f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}",
        f"model.num_heads={args.hidden // 64}", f"model.intermediate_size={4 * args.hidden}",
        f"model.max_position_embeddings={args.seq + 2}", f"model.extractor_size={args.extractor}",
        "model.dropout=0.1"])


def bare_loop(model, cfg, batch):
    from pretrain.model import param_groups

    opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    warmup, total = cfg.optim.warmup_steps, cfg.train.train_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))

    def step() -> None:
        loss, _ = model.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return step


def our_loop(model, cfg, batch):
    import deepspeed

    from pretrain import distributed
    from pretrain.config import deepspeed_config
    from pretrain.model import param_groups
    from pretrain.trainer import StepWindow, train_step

    opt = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt,
                                      config=deepspeed_config(cfg, 1))
    batches = itertools.repeat(batch)
    window = StepWindow(2, engine.device)

    def step() -> None:
        train_step(engine, batches, window)
        distributed.any_rank(False)
    return step


def timed(step, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zero", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--extractor", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: stable timings on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    from deepspeed.utils import logger as ds_logger

    from pretrain import distributed
    from pretrain.model import build_model, flops_per_token

    ds_logger.setLevel(logging.ERROR)
    distributed.init()
    batch = make_batch(args.batch, args.seq, args.vocab)
    torch.manual_seed(0)
    reference = build_model(run_config(args, 0).model, {"vocab_size": args.vocab, "pad_id": 1})
    tokens = int(batch["attention_mask"].sum())
    flops = flops_per_token(reference, round(tokens / args.batch))
    variants = {"bare": bare_loop(copy.deepcopy(reference), run_config(args, 0), batch)}
    for stage in args.zero:
        variants[f"ours ZeRO-{stage}"] = our_loop(copy.deepcopy(reference),
                                                  run_config(args, stage), batch)
    for step in variants.values():  # warm-up: allocator, first-touch, lazy inits
        timed(step, 2)
    rounds = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, step in variants.items():
            rounds[name].append(timed(step, args.steps))
    print(f"model: hidden {args.hidden}, {args.layers} layers, extractor {args.extractor}, "
          f"{sum(p.numel() for p in reference.parameters()) / 1e6:.1f}M params; batch "
          f"{args.batch}×{args.seq} ({tokens} non-padding tokens); torch threads "
          f"{torch.get_num_threads()}; {args.rounds} rounds × {args.steps} steps")
    base = statistics.median(rounds["bare"])
    for name, times in rounds.items():
        ms = statistics.median(times)
        line = (f"{name:14s} {1e3 * ms:8.1f} ms/step  ({tokens / ms:,.0f} tok/s, "
                f"{flops * tokens / ms / 1e9:.1f} GFLOP/s)  overhead ratio {ms / base:.3f}")
        if args.peak_tflops:
            line += f"  MFU {100 * flops * tokens / ms / (args.peak_tflops * 1e12):.2f}%"
        print(line, flush=True)
    distributed.finish(0)


if __name__ == "__main__":
    main()
