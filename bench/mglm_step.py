"""mGLM training step with the `sep` attention vs the dense float mask, and greedy generation
with vs without the KV cache, side by side in one process.

    python bench/mglm_step.py [--size tiny|base|large] [--seq N] [--batch B] [--steps 3]
                              [--rounds 3] [--device auto|cpu|cuda] [--dtype fp32|bf16|fp16]
                              [--prompt P] [--new-tokens T] [--peak-tflops X] [--threads 1]

Sizes (FFN 4h; both position tables have --seq + 1 rows): tiny 4×128×4 (vocab 4,096, --seq 256,
batch 4), base 12×768×12 (vocab 250,112, --seq 512, batch 8), large = the released mGLM shape
24×1536×16 with its 1,025 position rows (spec mGLM.md A2.2; vocab 250,112, --seq 512, batch 8;
for a GPU).

Batches: random packed windows (`[CLS] d1 [eos] [CLS] d2 …`, --seq tokens each, ids of a fake
GLM tokenizer laid out as `train-tokenizer --layout glm`'s) through the real
`pretrain.glm_blank.BlankCollator` (config from `pretrain.glm_data.blank_config`), one micro-batch
per mode ([MASK], [sMASK], [gMASK]; short_seq_prob 0 so that every batch has full windows),
so nothing is read from disk.

1. Training step = `pretrain.glm_model.GlmPretrainingModel` forward + backward + gradient clip +
   AdamW step (`glm_model.param_groups`), train mode (dropout 0.1), one optimizer step per
   micro-batch; a round = --steps steps cycling the three mode batches. Variants switch the
   network's `config.attention` on ONE model and optimizer: "sdpa" (bool mask from sep, built
   once per forward), "flex" (FlexAttention; CUDA only: it has no backward on CPU in torch 2.13)
   and "dense" (additive [B,1,S,S] float mask, the reference's way). Rounds alternate between
   the variants after 2 warm-up rounds each (they also compile flex);
   medians are reported; speedup = dense / variant. Note: hf_glm's flex path has no
   attention-probability dropout, and CPU SDPA falls back to its math kernel when dropout is on,
   so on CPU "sdpa" and "dense" do nearly the same work.
   Tokens = real (non-padding) tokens;

       MFU = glm_model.flops_per_token(model, T̄) × tokens/s ÷ peak FLOP/s

   with the peak from `pretrain.trainer.peak_flops` (the trainer's GPU table; "n/a" on CPU unless
   --peak-tflops). "peak MiB" = extra memory of one forward + backward (bench/veco_step.py's
   `peak_bytes`). A check first compares the three attentions' eval-mode losses.
2. Generation: greedy decoding of --new-tokens after `[CLS] x… [gMASK]` prompts of --prompt
   tokens (sep = prompt length, the new tokens at the [gMASK] position with block positions
   1, 2, …), eval mode, fp32, "sdpa" attention: with the cache = prefill once, then one token per
   forward with past_key_values; without = the whole sequence recomputed every step. Both must
   produce the same tokens (asserted). Timing is never asserted anywhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path
from typing import Callable

_BENCH_DIR = Path(__file__).resolve().parent
REPO = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", _BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BV = _bench_module("veco_step")  # sync, time_rounds, peak_bytes: one copy of the timing code

#: (hidden, layers, heads, sentencepiece pieces N, position rows (None: --seq + 1), --seq,
#: --batch, --prompt, --new-tokens)
SIZES = {
    "tiny": dict(hidden=128, layers=4, heads=4, pieces=4085, positions=None, seq=256, batch=4,
                 prompt=96, new_tokens=32),
    "base": dict(hidden=768, layers=12, heads=12, pieces=250000, positions=None, seq=512,
                 batch=8, prompt=256, new_tokens=64),
    # released mGLM-Large (spec mGLM.md A2.2: M:config_tasks/model_blocklm_multilingual_large.sh)
    "large": dict(hidden=1536, layers=24, heads=16, pieces=250000, positions=1025, seq=512,
                  batch=8, prompt=256, new_tokens=64),
}


def fake_tokenizer(pieces: int) -> dict:
    """The manifest block of a GLM tokenizer with `pieces` SentencePiece ids (command tokens at
    N+k, spec mGLM.md A2.2); every 16th piece counts as a sentence end."""
    n = pieces
    return {"name_or_path": "bench-fake-glm", "fingerprint": "bench", "layout": "glm",
            "vocab_size": n + 11, "padded_vocab_size": math.ceil((n + 11) / 128) * 128,
            "pad_id": n, "eos_id": n, "sep_id": n + 1, "cls_id": n + 2, "mask_id": n + 3,
            "unk_id": 0, "glm_unk_id": n + 4, "sop_id": n + 6, "eop_id": n + 7,
            "smask_id": n + 8, "gmask_id": n + 9, "dblock_id": n + 10,
            "sentence_end_ids": list(range(5, n, 16))}


def run_config(args):
    from pretrain.config import load_config

    return load_config(None, [
        "objective=mglm", "model.init_from=tiny", f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
        f"model.intermediate_size={4 * args.hidden}",
        f"model.max_position_embeddings={args.positions}", "model.dropout=0.1",
        f"data.max_seq_len={args.seq}", "mglm.attention=sdpa",
        "mglm.short_seq_prob=0.0"])  # A1.10's rare short-window batches would skew one batch


def packed_windows(tokenizer: dict, count: int, seq: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """`count` windows of `seq` ids cut from a stream `[CLS] d [eos] [CLS] d [eos] …` of random
    documents (as `pretrain.glm_data` packs them: each window starts with [CLS])."""
    cls, eos, n = tokenizer["cls_id"], tokenizer["eos_id"], tokenizer["vocab_size"] - 11
    out = []
    for _ in range(count):
        stream = [cls]
        while len(stream) < seq:
            doc = rng.integers(1, n, size=int(rng.integers(seq // 4, seq)))
            stream += doc.tolist() + [eos, cls]
        out.append(np.asarray(stream[:seq], dtype=np.int64))
    return out


def mode_batches(cfg, tokenizer: dict, batch: int) -> list[dict[str, torch.Tensor]]:
    """One collated micro-batch per blank-infilling mode (0 [MASK], 1 [sMASK], 2 [gMASK])."""
    from pretrain.glm_blank import BlankCollator, GlmIds
    from pretrain.glm_data import blank_config, sentence_end_table

    collate = BlankCollator(GlmIds.from_tokenizer(tokenizer), blank_config(cfg), cfg.data.seed,
                            sentence_end_table(tokenizer))
    rng = np.random.default_rng(cfg.data.seed)
    return [collate(packed_windows(tokenizer, batch, cfg.data.max_seq_len, rng),
                    list(range(mode * batch, (mode + 1) * batch)), mode) for mode in range(3)]


# ---------------------------------------------------------------------- 1. training step

def train_round(model, optimizer, batches: list[dict], steps: int, kind: str,
                amp: Callable) -> Callable[[], None]:
    """`steps` optimizer steps with net.config.attention = kind, cycling the mode batches."""
    net = model.net

    def run() -> None:
        net.config.attention = kind
        for i in range(steps):
            with amp():
                loss, _ = model(**batches[i % len(batches)])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return run


def forward_backward(model, batch: dict, kind: str, amp: Callable) -> Callable[[], None]:
    def run() -> None:
        model.net.config.attention = kind
        with amp():
            loss, _ = model(**batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
    return run


def eval_losses(model, batch: dict, kinds: list[str], amp: Callable) -> dict[str, float]:
    model.eval()
    out = {}
    with torch.no_grad():
        for kind in kinds:
            model.net.config.attention = kind
            with amp():
                out[kind] = float(model(**batch)[0])
    model.train()
    return out


# ---------------------------------------------------------------------- 2. generation

def greedy(net, prompt: torch.Tensor, sop: int, vocab: int, new_tokens: int,
           cache: bool) -> torch.Tensor:
    """[B, new_tokens] greedy ids after `[CLS] x… [gMASK]` prompts [B, P] (sep = P; Part B at
    the [gMASK] position P-1 with block positions 1, 2, …; A1.6-A1.7)."""
    b, p = prompt.shape
    device = prompt.device
    sep = torch.full((b,), p, dtype=torch.long, device=device)
    part_a = torch.stack([torch.arange(p, device=device), torch.zeros(p, dtype=torch.long,
                                                                      device=device)])
    part_a = part_a[None].expand(b, 2, p)  # [B, 2, P]

    def part_b(start: int, count: int) -> torch.Tensor:  # [B, 2, count]
        rows = torch.stack([torch.full((count,), p - 1, device=device),
                            torch.arange(start + 1, start + count + 1, device=device)])
        return rows[None].expand(b, 2, count)

    generated = torch.full((b, 1), sop, dtype=torch.long, device=device)  # [sop] g1 g2 …
    past = None
    if cache:
        past = net(prompt, part_a, sep=sep, use_cache=True).past_key_values
    for t in range(new_tokens):
        if cache:
            out = net(generated[:, -1:], part_b(t, 1), past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = net(torch.cat([prompt, generated], 1),
                      torch.cat([part_a, part_b(0, t + 1)], 2), sep=sep)
        next_ids = out.logits[:, -1, :vocab].argmax(-1)  # padded embedding rows are no tokens
        generated = torch.cat([generated, next_ids[:, None]], 1)
    return generated[:, 1:]


# ---------------------------------------------------------------------- main

def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="tiny", choices=list(SIZES))
    parser.add_argument("--seq", type=int, default=None, help="window tokens (data.max_seq_len)")
    parser.add_argument("--batch", type=int, default=None, help="windows per micro-batch")
    parser.add_argument("--steps", type=int, default=3,
                        help="optimizer steps per timed round (cycling the 3 mode batches)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"],
                        help="training autocast dtype on CUDA (default bf16); CPU runs fp32")
    parser.add_argument("--prompt", type=int, default=None, help="generation prompt tokens")
    parser.add_argument("--new-tokens", type=int, default=None, help="generated tokens")
    parser.add_argument("--gen-batch", type=int, default=None, help="prompts (default --batch)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak TFLOP/s for MFU (default: the trainer's GPU table)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: stable timings on a shared machine; 0: torch's "
                             "default)")
    args = parser.parse_args(argv)
    for key, value in SIZES[args.size].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.gen_batch = args.gen_batch or args.batch
    args.positions = args.positions or args.seq + 1
    if args.prompt > args.positions or args.new_tokens >= args.positions or args.prompt < 3:
        parser.error(f"--prompt {args.prompt} must be in [3, {args.positions}] and --new-tokens "
                     f"{args.new_tokens} < {args.positions} (position rows of --size {args.size})")
    if args.seq + 1 > args.positions:  # block positions reach max_seq_len (a whole-window span)
        parser.error(f"--seq {args.seq} needs {args.seq + 1} position rows; --size {args.size} "
                     f"has {args.positions}")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Runs both sections; returns the measured numbers (tests read them, never time them)."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype_name = args.dtype or "bf16"
    if device.type == "cpu":
        dtype_name = "fp32"
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]

    def amp():
        if device.type == "cuda" and dtype != torch.float32:
            return torch.autocast("cuda", dtype=dtype)
        return torch.autocast(device.type, enabled=False)

    from pretrain.glm_model import build_model, flops_per_token, param_groups
    from pretrain.trainer import peak_flops

    cfg = run_config(args)
    tokenizer = fake_tokenizer(args.pieces)
    batches = [{k: v.to(device) for k, v in b.items()}
               for b in mode_batches(cfg, tokenizer, args.batch)]
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.mglm, tokenizer).to(device).train()
    net = model.net
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-4)
    kinds = ["flex", "sdpa", "dense"] if device.type == "cuda" else ["sdpa", "dense"]

    steps = [batches[i % 3] for i in range(args.steps)]
    tokens = sum(int(b["lengths"].sum()) for b in steps)  # real tokens per round
    mean_len = round(tokens / sum(len(b["lengths"]) for b in steps))
    share = sum(float(b["loss_mask"].sum()) for b in steps) / tokens  # Part-B targets
    flops = flops_per_token(model, mean_len, share)
    peak = peak_flops(dtype_name, args.peak_tflops) if device.type == "cuda" or \
        args.peak_tflops else 0.0  # the table is for GPUs: a CPU run on a GPU host has none
    losses = eval_losses(model, batches[0], kinds, amp)
    tol = 2e-2 if dtype != torch.float32 else 1e-4
    same = all(abs(v - losses["dense"]) <= tol * max(1.0, abs(losses["dense"]))
               for v in losses.values())

    n_params = sum(p.numel() for p in net.parameters())
    print(f"device={device} dtype={dtype_name} torch threads={torch.get_num_threads()} "
          f"rounds={args.rounds} x {args.steps} optimizer steps (median of alternating rounds, "
          f"2 warm-up rounds each)")
    print(f"model --size {args.size}: {args.layers} layers, hidden {args.hidden}, {args.heads} "
          f"heads, FFN {4 * args.hidden}, vocab {tokenizer['padded_vocab_size']}, "
          f"{args.positions} positions; {n_params / 1e6:.1f}M params")
    shapes = ", ".join(f"{name} {tuple(b['input_ids'].shape)} sep~{b['sep'].float().mean():.0f}"
                       for name, b in zip(("[MASK]", "[sMASK]", "[gMASK]"), batches))
    print(f"batches ({args.batch} windows of {args.seq} tokens): {shapes}; {tokens} real "
          f"tokens per round, mean length {mean_len}, {flops / 1e6:.1f} MFLOP/token")
    print("check: eval losses " + ", ".join(f"{k} {v:.6f}" for k, v in losses.items())
          + f" -> {'same' if same else 'DIFFERENT'} (tol {tol:g})")

    rounds = {kind: train_round(model, optimizer, batches, args.steps, kind, amp)
              for kind in kinds}
    ms = BV.time_rounds(rounds, device, args.rounds)
    mem = {kind: BV.peak_bytes(forward_backward(model, batches[0], kind, amp), device) / 2**20
           for kind in kinds}
    net.config.attention = "sdpa"
    print(f"\n1. training step (forward + backward + clip + AdamW), speedup = dense / variant")
    print(f"  {'attention':<10} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>8} {'MFU':>7} "
          f"{'peak MiB':>9}  speedup")
    train = {}
    for kind in kinds:
        step_s = ms[kind] / 1e3 / args.steps
        tok_s = tokens / (ms[kind] / 1e3)
        mfu = flops * tok_s / peak if peak else None
        train[kind] = {"ms_per_step": 1e3 * step_s, "tokens_per_s": tok_s, "mfu": mfu,
                       "peak_mib": mem[kind], "speedup": ms["dense"] / ms[kind]}
        mfu_text = f"{100 * mfu:6.2f}%" if mfu is not None else f"{'n/a':>7}"
        print(f"  {kind:<10} {1e3 * step_s:>9.1f} {tok_s:>10,.0f} {flops * tok_s / 1e9:>8.1f} "
              f"{mfu_text} {mem[kind]:>9.1f}  {train[kind]['speedup']:>6.2f}x", flush=True)

    # 2. generation, fp32 so that recompute and cache agree to the bit pattern argmax needs
    net.eval()
    rng = np.random.default_rng(cfg.data.seed + 1)
    body = rng.integers(1, tokenizer["vocab_size"] - 11, size=(args.gen_batch, args.prompt - 2))
    prompt = torch.from_numpy(np.concatenate([
        np.full((args.gen_batch, 1), tokenizer["cls_id"]), body,
        np.full((args.gen_batch, 1), tokenizer["gmask_id"])], 1)).to(device)
    results: dict[str, torch.Tensor] = {}

    def decode(cache: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                results[cache] = greedy(net, prompt, tokenizer["sop_id"],
                                        tokenizer["vocab_size"], args.new_tokens, cache)
        return run

    gen_ms = BV.time_rounds({"no cache": decode(False), "KV cache": decode(True)}, device,
                            args.rounds)
    assert torch.equal(results[True], results[False]), (
        f"KV-cache decoding differs from recomputing: first difference at step "
        f"{int((results[True] != results[False]).any(0).nonzero()[0])}")
    new = args.gen_batch * args.new_tokens
    print(f"\n2. greedy generation, {args.gen_batch} prompts x {args.prompt} tokens -> "
          f"{args.new_tokens} new tokens each, eval fp32, attention sdpa; speedup = no cache / "
          f"variant")
    print(f"  {'decoding':<10} {'ms':>9} {'tokens/s':>10}  speedup")
    generation = {}
    for name, t in gen_ms.items():
        generation[name] = {"ms": t, "tokens_per_s": new / (t / 1e3),
                            "speedup": gen_ms["no cache"] / t}
        print(f"  {name:<10} {t:>9.1f} {new / (t / 1e3):>10,.1f}  "
              f"{generation[name]['speedup']:>6.2f}x", flush=True)
    print(f"  => same {args.new_tokens} tokens per prompt with and without the cache: yes")
    return {"losses": losses, "same_loss": same, "train": train, "generation": generation,
            "tokens": results[True].tolist()}


if __name__ == "__main__":
    main()
