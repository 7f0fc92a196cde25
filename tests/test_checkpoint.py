"""Checkpoint bookkeeping (which tag to resume, pruning, compatibility checks, RNG states) and
SIGTERM on a 2-rank run: a complete checkpoint is left behind and resuming continues from it."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from dist_utils import run, start, tiny_args, train_command, train_records, wait_for_step
from pretrain import checkpoint as ck

pytestmark = pytest.mark.timeout(600)


def make_tag(root, step, complete=True):
    tag = root / ck.tag_for_step(step)
    tag.mkdir(parents=True)
    (tag / "mp_rank_00_model_states.pt").write_bytes(b"x")
    if complete:
        (tag / ck.COMPLETE).write_text(json.dumps(state(step).to_dict()))
    return tag


def state(step=10, **changes):
    base = dict(step=step, consumed_samples=8 * step, world_size=2, zero_stage=2,
                data_hash="d1", data_hashes={"en": "e1", "de": "g1"},
                model_shapes={"w": [4, 4], "b": [4]}, config={"train": {"train_steps": 20}})
    base.update(changes)
    return ck.ClientState(**base)


def test_resume_never_picks_an_interrupted_save(tmp_path):
    root = tmp_path / "checkpoints"
    assert ck.find_resume(tmp_path, "auto") is None
    make_tag(root, 10)
    make_tag(root, 20)
    (root / ck.LATEST).write_text("step_000020")
    make_tag(root, 30, complete=False)  # killed while writing
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    (root / ck.LATEST).write_text("step_000030")  # even if `latest` named it
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    (root / ck.LATEST).unlink()  # crash between complete.json and `latest`
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    assert ck.find_resume(tmp_path, "none") is None
    assert ck.find_resume(tmp_path, str(root / "step_000010")) == root / "step_000010"
    assert ck.find_resume(tmp_path, str(tmp_path)) == root / "step_000020"
    with pytest.raises(ck.ResumeError, match="interrupted"):
        ck.find_resume(tmp_path, str(root / "step_000030"))
    with pytest.raises(ck.ResumeError, match="no such"):
        ck.find_resume(tmp_path, str(tmp_path / "nope"))


def test_prune_keeps_last_k_and_never_latest(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40):
        make_tag(root, step)
    make_tag(root, 15, complete=False)
    make_tag(root, 50, complete=False)  # being written right now by a newer save
    (root / ck.LATEST).write_text("step_000030")
    ck.prune(root, keep_last=2)
    left = sorted(p.name for p in root.glob("step_*"))
    # 40 is newer than latest (its `latest` update is pending): untouched, like 50
    assert left == ["step_000020", "step_000030", "step_000040", "step_000050"]
    (root / ck.LATEST).write_text("step_000040")
    ck.prune(root, keep_last=1)
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000040", "step_000050"]


def test_compatibility_checks():
    where = Path("ckpt")
    notes = ck.check_compatible(state(), state(world_size=1, config={"train": {
        "train_steps": 40}}), where)
    assert "world size 2 -> 1" in notes and "train.train_steps: 20 -> 40" in notes
    with pytest.raises(ck.ResumeError, match=r"different data .*de"):
        ck.check_compatible(state(), state(data_hash="d2", data_hashes={"en": "e1"}), where)
    with pytest.raises(ck.ResumeError, match=r"another shape .*w: \[4, 4\] -> \[4, 8\]"):
        ck.check_compatible(state(), state(model_shapes={"w": [4, 8], "b": [4]}), where)
    with pytest.raises(ck.ResumeError, match="zero_stage=2"):
        ck.check_compatible(state(), state(zero_stage=3), where)
    with pytest.raises(ck.ResumeError, match="zero_stage=0"):
        ck.check_compatible(state(zero_stage=0), state(zero_stage=2), where)
    ck.check_compatible(state(), state(zero_stage=1), where)  # 2 -> 1: same layout, allowed
    assert not ck.needs_universal(state(), 2, 2)
    assert ck.needs_universal(state(), 1, 2) and ck.needs_universal(state(), 2, 1)
    assert not ck.needs_universal(state(zero_stage=0), 4, 0)


def test_rng_states_round_trip_through_json():
    ck.seed_everything(3)
    saved = json.loads(json.dumps(ck.capture_rng()))
    expected = (random.random(), np.random.rand(), torch.rand(3))
    ck.seed_everything(99)
    ck.restore_rng(saved)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])


def test_client_state_round_trip():
    s = state()
    assert ck.ClientState.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_sigterm_saves_then_resume_continues(tiny_mrc_data, tmp_path):
    """SIGTERM to torchrun mid-run: every rank finishes its step, a complete checkpoint becomes
    `latest`, ranks exit 143. A half-written later checkpoint is ignored by --resume auto, the
    run continues from the signal's step (train_steps may change), and other data is refused."""
    run_dir = tmp_path / "run"
    sets = ("train.train_steps=100000", "train.save_every=0", "train.eval_every=0")
    proc = start(train_command(2, tiny_args(tiny_mrc_data, run_dir, *sets)), tmp_path / "log")
    wait_for_step(run_dir, 3, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 143 and not summary["finished"], log[-3000:]
    stopped = summary["step"]
    assert stopped >= 3 and train_records(run_dir)[-1]["step"] == stopped
    root = run_dir / "checkpoints"
    assert (root / ck.LATEST).read_text() == ck.tag_for_step(stopped)
    assert ck.is_complete(root / ck.tag_for_step(stopped))
    assert "got SIGTERM" in log

    make_tag(root, stopped + 1, complete=False)  # a save killed half-way
    make_tag(root, 1, complete=False)
    out = run(train_command(2, tiny_args(tiny_mrc_data, run_dir, "train.save_every=0",
                                         "train.eval_every=0",
                                         f"train.train_steps={stopped + 2}")))
    assert f"resuming from {root / ck.tag_for_step(stopped)}" in out.stdout
    assert f"train.train_steps: 100000 -> {stopped + 2}" in out.stdout
    steps = [r["step"] for r in train_records(run_dir)]
    assert steps == list(range(1, stopped + 3))
    assert (root / ck.LATEST).read_text() == ck.tag_for_step(stopped + 2)
    assert sorted(p.name for p in root.glob("step_*")) == \
        [ck.tag_for_step(stopped), ck.tag_for_step(stopped + 2)]  # keep_last=2, partials gone

    refused = run(train_command(0, tiny_args(tiny_mrc_data / "en", run_dir)), check=False)
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "different data" in errors[0] and "de" in errors[0]
