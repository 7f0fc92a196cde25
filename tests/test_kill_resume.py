"""SIGKILL at random points (mid-step, mid-save, mid-start-up) of a 2-rank ZeRO-2 run with
dropout on, then `--resume auto` until it finishes: the losses, lr and final weights equal those
of a run that was never interrupted. The kill times come from a seeded generator (the seed is
in the failure message)."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

from dist_utils import run, start, tiny_args, train_command, train_records

pytestmark = pytest.mark.timeout(600)
SETS = ("train.train_steps=12", "train.save_every=2", "train.eval_every=0", "train.log_every=1",
        "train.keep_last=2")
SEED = 20261202


def _weights(run_dir, step):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(run_dir / "checkpoints"),
                                                    tag=f"step_{step:06d}")


def _kill_at_random(cmd, run_dir, log, rng) -> None:
    """Start `cmd`, wait until it has logged a random step (1-11) plus a random fraction of a
    second, then SIGKILL its whole process group (launcher, ranks, loader workers)."""
    proc = start(cmd, log)
    target = rng.randint(1, 11)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r["step"] >= target for r in train_records(run_dir)):
            break
        time.sleep(0.05)
    time.sleep(rng.random())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_sigkill_at_random_points_then_resume_is_bit_identical(tiny_mrc_data, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(train_command(2, tiny_args(tiny_mrc_data, straight, *SETS)))
    rng = random.Random(SEED)
    kills = 0
    for attempt in range(2):
        _kill_at_random(train_command(2, tiny_args(tiny_mrc_data, killed, *SETS)), killed,
                        tmp_path / f"log{attempt}", rng)
        kills += 1
    run(train_command(2, tiny_args(tiny_mrc_data, killed, *SETS)))
    a, b = train_records(straight), train_records(killed)
    context = f"seed {SEED}, {kills} kills"
    assert [r["step"] for r in b] == list(range(1, 13)), context
    for ra, rb in zip(a, b):
        assert (ra["loss"], ra["lr"]) == (rb["loss"], rb["lr"]), (context, ra["step"])
    wa, wb = _weights(straight, 12), _weights(killed, 12)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), context
