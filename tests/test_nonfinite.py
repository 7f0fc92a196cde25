"""The non-finite guard: a NaN loss skips its update (every precision and ZeRO stage; fp32
without ZeRO through `GuardedAdamW`) and is counted; `train.nonfinite=stop`, or
`train.nonfinite_patience` skips in a row, stop the run with exit 3 and no new checkpoint.
Faults come from `XPRETRAIN_NAN_STEPS` (the listed steps' losses are multiplied by NaN)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dist_utils import cpu_env, run, tiny_args, train_command, train_records

pytestmark = pytest.mark.timeout(600)
SHORT = ("train.eval_every=0", "train.save_every=0", "train.log_every=1")


def _weights(tag):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    if list(tag.glob("*optim_states.pt")) and list(tag.glob("zero_pp_rank_*")):
        return get_fp32_state_dict_from_zero_checkpoint(str(tag.parent), tag=tag.name)
    return torch.load(tag / "mp_rank_00_model_states.pt", weights_only=False)["module"]


@pytest.mark.parametrize("nproc, stage, precision", [(0, 0, "fp32"), (2, 2, "fp32"),
                                                      (0, 3, "bf16")])
def test_nan_loss_skips_the_update(tiny_mrc_data, tmp_path, nproc, stage, precision):
    run_dir = tmp_path / "run"
    proc = run(train_command(nproc, tiny_args(tiny_mrc_data, run_dir, "train.train_steps=5",
                                              f"train.zero_stage={stage}",
                                              f"train.precision={precision}", *SHORT)),
               env=cpu_env(XPRETRAIN_NAN_STEPS="3"))
    records = {r["step"]: r for r in train_records(run_dir)}
    assert [records[s]["skipped_steps"] for s in range(1, 6)] == [0, 0, 1, 1, 1]
    assert records[3]["loss"] is None  # the skipped step is not averaged into the log
    assert all(math.isfinite(records[s]["loss"]) for s in (1, 2, 4, 5))
    assert records[4]["lr"] == records[3]["lr"]  # a skipped update does not advance the LR
    assert "step 3: non-finite loss, update skipped (1 in a row" in proc.stdout
    weights = _weights(run_dir / "checkpoints" / "step_000005")
    assert weights and all(torch.isfinite(v).all() for v in weights.values())


@pytest.mark.parametrize("sets, nan_steps, stop_step, message", [
    (("train.nonfinite=stop",), "3", 3, "train.nonfinite=stop"),
    (("train.nonfinite_patience=2",), "3,4", 4, "2 steps in a row"),
])
def test_nonfinite_stops_with_exit_3_and_no_checkpoint(tiny_mrc_data, tmp_path, sets,
                                                       nan_steps, stop_step, message):
    run_dir = tmp_path / "run"
    proc = run(train_command(0, tiny_args(tiny_mrc_data, run_dir, "train.train_steps=8",
                                          *SHORT, "train.save_every=2", *sets)),
               env=cpu_env(XPRETRAIN_NAN_STEPS=nan_steps), check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "step_000002" in errors[0], errors
    root = run_dir / "checkpoints"
    assert (root / "latest").read_text().strip() == "step_000002"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000002"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 3 and summary["step"] == stop_step


def test_poisoned_optimizer_state_with_valid_checksums_never_becomes_latest(tiny_mrc_data,
                                                                            tmp_path):
    """Defence in depth behind the checksums: NaN Adam moments that pass verification (the
    table re-recorded after the damage) make the next update NaN; the NaN loss after it is
    skipped, and the save of NaN weights is refused: exit 3, `latest` stays at the good step."""
    from pretrain import checkpoint as ck

    run_dir = tmp_path / "run"
    args = ("train.save_every=2", "train.zero_stage=2", *SHORT[:2])
    run(train_command(0, tiny_args(tiny_mrc_data, run_dir, "train.train_steps=2", *args)))
    tag = run_dir / "checkpoints" / "step_000002"
    (shard,) = tag.glob("*optim_states.pt")
    tree = torch.load(shard, weights_only=False)
    states = tree["optimizer_state_dict"]["base_optimizer_state"]["state"]
    for state in states.values():
        state["exp_avg"].fill_(float("nan"))
    torch.save(tree, shard)
    commit = json.loads((tag / "complete.json").read_text())
    commit["files"] = ck.record_files(tag)
    (tag / "complete.json").write_text(json.dumps(commit))
    assert ck.verify(tag) == []

    proc = run(train_command(0, tiny_args(tiny_mrc_data, run_dir, "train.train_steps=4", *args)),
               check=False)
    assert proc.returncode == 3, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite values" in errors[0], proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert not ck.is_complete(run_dir / "checkpoints" / "step_000004")
