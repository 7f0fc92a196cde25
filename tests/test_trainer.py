"""Trainer on 2 CPU ranks (torchrun, gloo): exact resume on ZeRO-2, ZeRO-3 steps, 2 → 1 rank
resume through a universal checkpoint, logging outputs, loss going down.

Runs are module-scoped and shared by the assertions (each launch costs ~10 s)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dist_utils import eval_records, run, tiny_args, train_command, train_records

pytestmark = pytest.mark.timeout(600)

ZERO2 = ("train.train_steps=20", "train.save_every=10", "train.eval_every=10",
         "train.keep_last=2", "train.log_every=1")


@pytest.fixture(scope="module")
def zero2_runs(tiny_mrc_data, tmp_path_factory):
    """(straight, resumed): 20 steps in one go vs 10 steps, stop, resume, 10 more; dropout on,
    one loader worker per rank."""
    base = tmp_path_factory.mktemp("zero2")
    straight, resumed = base / "straight", base / "resumed"
    run(train_command(2, tiny_args(tiny_mrc_data, straight, *ZERO2)))
    first = run(train_command(2, tiny_args(tiny_mrc_data, resumed, *ZERO2) +
                              ["--stop-at-step", "10"]))
    assert [r["step"] for r in train_records(resumed)] == list(range(1, 11)), first.stdout[-2000:]
    second = run(train_command(2, tiny_args(tiny_mrc_data, resumed, *ZERO2)))
    assert "resuming from" in second.stdout and "step_000010" in second.stdout
    return straight, resumed


def _fp32_weights(run_dir, step):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(run_dir / "checkpoints"),
                                                    tag=f"step_{step:06d}")


def test_resume_gives_identical_losses(zero2_runs):
    straight, resumed = zero2_runs
    a, b = train_records(straight), train_records(resumed)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 21))
    keys = [k for k in a[0] if k.startswith(("loss", "cls_loss", "span_loss")) or k == "lr"]
    for ra, rb in zip(a, b):
        assert {k: ra.get(k) for k in keys} == {k: rb.get(k) for k in keys}, ra["step"]
    ea, eb = eval_records(straight), eval_records(resumed)
    assert [r["step"] for r in ea] == [10, 20]
    assert [{k: v for k, v in r.items() if k != "eval_batches_per_rank"} for r in ea] == \
        [{k: v for k, v in r.items() if k != "eval_batches_per_rank"} for r in eb]


def test_resume_gives_identical_parameters(zero2_runs):
    straight, resumed = zero2_runs
    wa, wb = _fp32_weights(straight, 20), _fp32_weights(resumed, 20)
    assert wa.keys() == wb.keys() and len(wa) > 10
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    w10 = _fp32_weights(resumed, 10)  # kept (keep_last=2); training moved the weights
    assert any(not torch.equal(w10[n], wb[n]) for n in wb)


def test_loss_decreases(zero2_runs):
    losses = [r["loss"] for r in train_records(zero2_runs[0])]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_run_directory_outputs(zero2_runs):
    straight = zero2_runs[0]
    record = train_records(straight)[-1]
    for key in ("step", "loss", "lr", "tokens_per_s", "cls_loss", "span_loss", "loss/en",
                "loss/de", "consumed_samples"):
        assert key in record, key
    assert record["mfu"] is None  # no known peak on CPU
    assert record["tokens_per_s"] > 0 and record["consumed_samples"] == 20 * 8
    evals = eval_records(straight)
    assert all(0 <= r["f1"] <= 1 and 0 <= r["relevance_acc"] <= 1 for r in evals)
    assert (straight / "config.yaml").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in (straight / "tb").iterdir())
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["finished"] and summary["exit_code"] == 0 and summary["step"] == 20
    assert summary["last_loss"] < summary["first_loss"]
    ckpts = straight / "checkpoints"
    assert (ckpts / "latest").read_text() == "step_000020"
    assert sorted(p.name for p in ckpts.glob("step_*")) == ["step_000010", "step_000020"]
    tag = ckpts / "step_000020"
    assert (tag / "complete.json").is_file()
    assert sorted(p.name for p in tag.glob("rng_rank*.json")) == \
        ["rng_rank00000.json", "rng_rank00001.json"]
    state = json.loads((tag / "complete.json").read_text())
    assert state["consumed_samples"] == 160 and state["world_size"] == 2
    assert set(state["data_hashes"]) == {"en", "de"}


@pytest.fixture(scope="module")
def zero3_run(tiny_mrc_data, tmp_path_factory):
    """ZeRO-3 on 2 ranks, dropout off (so a 1-rank continuation can be compared)."""
    run_dir = tmp_path_factory.mktemp("zero3") / "run"
    sets = ("train.zero_stage=3", "model.dropout=0.0", "train.train_steps=8",
            "train.save_every=4", "train.eval_every=4", "train.keep_last=2")
    run(train_command(2, tiny_args(tiny_mrc_data, run_dir, *sets)))
    return run_dir, sets


def test_zero3_trains_on_two_ranks(zero3_run):
    run_dir, _ = zero3_run
    losses = [r["loss"] for r in train_records(run_dir)]
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    tag = run_dir / "checkpoints" / "step_000008"
    assert len(list(tag.glob("zero_pp_rank_*_mp_rank_00_model_states.pt"))) == 2
    assert len(_fp32_weights(run_dir, 8)) > 10


def test_universal_resume_two_ranks_to_one(zero3_run, tiny_mrc_data, tmp_path):
    """Resume the 2-rank ZeRO-3 checkpoint of step 4 on 1 rank: DeepSpeed universal checkpoint.
    The same global batches are seen; only the reduction order differs, so step 5 (computed
    from the loaded weights) matches exactly and later steps closely."""
    source, sets = zero3_run
    tag = source / "checkpoints" / "step_000004"
    out = run(train_command(1, tiny_args(tiny_mrc_data, tmp_path, *sets) +
                            ["--resume", str(tag)]))
    assert "world size 2 -> 1" in out.stdout
    assert (tag / "universal").is_dir()
    two = {r["step"]: r["loss"] for r in train_records(source)}
    one = {r["step"]: r["loss"] for r in train_records(tmp_path)}
    assert sorted(one) == [5, 6, 7, 8]
    assert one[5] == pytest.approx(two[5], rel=1e-6)
    for step in (6, 7, 8):
        assert one[step] == pytest.approx(two[step], rel=2e-2)
    state = json.loads((tmp_path / "checkpoints" / "step_000008" / "complete.json").read_text())
    assert state["world_size"] == 1 and state["consumed_samples"] == 64


def test_lr_schedule_warms_up_from_the_first_step(zero2_runs):
    """tiny_mpmr: lr 1e-3, warmup 2 steps, linear decay to 0 over 20 steps; the lr a step uses
    is the schedule at iteration step-1 (DeepSpeed would otherwise repeat min_lr at step 2)."""
    lrs = [r["lr"] for r in train_records(zero2_runs[0])]
    expected = [1e-3 * (i / 2 if i < 2 else (20 - i) / 18) for i in range(20)]
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_stop_at_a_step_already_reached_trains_nothing(zero2_runs, tiny_mrc_data):
    resumed = zero2_runs[1]
    before = (resumed / "metrics.jsonl").read_text()
    run(train_command(2, tiny_args(tiny_mrc_data, resumed, *ZERO2) + ["--stop-at-step", "15"]))
    assert [r["step"] for r in train_records(resumed)] == list(range(1, 21))
    assert (resumed / "metrics.jsonl").read_text() == before
