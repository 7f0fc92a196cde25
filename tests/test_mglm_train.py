"""mGLM on the shared trainer (`objective: mglm`): exact resume after a SIGTERM on 2 ranks, the
per-mode loss parts, held-out evaluation beside its baseline, ZeRO stages with fp32 / bf16, and
the export of a real checkpoint that the generation API fills blanks from."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from dist_utils import (ROOT, config_args, cpu_env, eval_records, fp32_weights, run, start,
                        train_command, train_records, wait_for_step)

pytestmark = pytest.mark.timeout(600)
TINY_MGLM = ROOT / "configs" / "tiny_mglm.yaml"
STEPS = ("train.train_steps=20", "train.save_every=10", "train.eval_every=10",
         "train.keep_last=2", "train.log_every=1")


def mglm_args(data, run_dir, *sets: str) -> list[str]:
    return config_args(TINY_MGLM, run_dir, f"data.paths=[{data / 'corpus'}]", *sets)


@pytest.fixture(scope="module")
def mglm_runs(tiny_glm_data, tmp_path_factory):
    """(straight, resumed): 20 steps in one go vs a run stopped by SIGTERM after step 6 or so
    (it finishes its step, saves, exits 143) and resumed to step 20; 2 ranks, ZeRO-2."""
    base = tmp_path_factory.mktemp("mglm")
    straight, resumed = base / "straight", base / "resumed"
    run(train_command(2, mglm_args(tiny_glm_data, straight, *STEPS)))
    # leg 1 through the launch script users run (pretrain.launcher → node launcher → ranks)
    sets = [x for item in STEPS for x in ("--set", item)]
    proc = start(["bash", str(ROOT / "launch_scripts" / "tiny_cpu.sh"), *sets], base / "leg1.log",
                 env=cpu_env(CONFIG=str(TINY_MGLM), RUN_DIR=str(resumed),
                             DATA_DIR=str(tiny_glm_data / "corpus"), XPRETRAIN_STEP_SLEEP_S="0.3"))
    wait_for_step(resumed, 6, proc)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, (base / "leg1.log").read_text()[-3000:]
    stopped_at = train_records(resumed)[-1]["step"]
    assert 6 <= stopped_at < 20
    second = run(train_command(2, mglm_args(tiny_glm_data, resumed, *STEPS)))
    assert f"step_{stopped_at:06d}" in second.stdout and "resuming from" in second.stdout
    return straight, resumed


def test_resume_after_sigterm_gives_identical_losses_and_weights(mglm_runs):
    straight, resumed = mglm_runs
    a, b = train_records(straight), train_records(resumed)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 21))
    keys = [k for k in set(a[0]) | set(a[1])
            if "loss" in k or "_acc" in k or k in ("lr", "redrawn", "target_tokens")]
    for ra, rb in zip(a, b):
        assert {k: ra.get(k) for k in keys} == {k: rb.get(k) for k in keys}, ra["step"]
    strip = lambda r: {k: v for k, v in r.items() if k != "eval_batches_per_rank"}  # noqa: E731
    ea = {r["step"]: strip(r) for r in eval_records(straight)}
    eb = {r["step"]: strip(r) for r in eval_records(resumed)}
    assert 20 in eb and all(ea[k] == eb[k] for k in eb)
    wa, wb = fp32_weights(straight, 20), fp32_weights(resumed, 20)
    assert wa.keys() == wb.keys() and any("block_position" in k for k in wa)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_parts_modes_and_learning(mglm_runs):
    records = train_records(mglm_runs[0])
    seen = set()
    for r in records:
        assert math.isfinite(r["blank_loss"]) and 0 <= r["blank_acc"] <= 1
        # loss averages the micro-batches' Part-B token means; blank_loss is the step's
        assert r["loss"] == pytest.approx(r["blank_loss"], rel=0.05)
        modes = {m for m in ("mask", "smask", "gmask") if f"{m}_loss" in r}
        assert modes, r
        seen |= modes
    assert len(seen) >= 2, seen  # 20 steps x 2 micro-batches x 2 ranks draw several modes
    assert records[-1]["consumed_samples"] == 20 * 8 and records[-1]["tokens_per_s"] > 0
    first = sum(r["blank_loss"] for r in records[:3])
    last = sum(r["blank_loss"] for r in records[-3:])
    assert last < 0.95 * first, (first, last)
    evals = eval_records(mglm_runs[0])
    assert [r["step"] for r in evals] == [10, 20]
    assert all(0 < r["majority_acc"] < 1 and r["target_tokens"] > 0 for r in evals)


@pytest.mark.parametrize("stage, precision", [(3, "bf16"), (0, "fp32")])  # fp16: GPU only
def test_zero_stages_and_precisions(tiny_glm_data, tmp_path, stage, precision):
    run_dir = tmp_path / "run"
    run(train_command(0, mglm_args(
        tiny_glm_data, run_dir, "train.train_steps=2", "train.save_every=2", "train.eval_every=0",
        f"train.zero_stage={stage}", f"train.precision={precision}",
        "train.global_batch_size=4") + ["--peak-tflops", "10"]))
    records = train_records(run_dir)
    assert [r["step"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in records), records
    assert 0 < records[-1]["mfu"] < 1  # with this model's FLOPs per token


def test_export_of_a_checkpoint_fills_blanks(mglm_runs, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from pretrain.convert_to_hf import main
    from pretrain.generate import GenerationConfig, load_filler

    straight = mglm_runs[0]
    out = tmp_path / "hf"
    assert main(["--checkpoint", str(straight), "--out", str(out)]) == 0
    weights = fp32_weights(straight, 20)
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    emb = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert len(AutoTokenizer.from_pretrained(out, trust_remote_code=True)) <= emb.shape[0]
    filler = load_filler(out)
    results = filler.fill(["Tom is [MASK] today.", "Ich habe [MASK] gesehen."],
                          strategy=GenerationConfig(max_new_tokens=4))
    assert len(results) == 2 and all("[MASK]" not in r["output"] for r in results)
