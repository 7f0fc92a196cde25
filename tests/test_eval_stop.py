"""A stop signal during an evaluation: the evaluation is abandoned (not recorded), the step's
checkpoint is written and the ranks exit 143 — without waiting for the whole held-out split."""

from __future__ import annotations

import json
import signal
import time

import pytest

from dist_utils import cpu_env, eval_records, start, tiny_args, train_command, wait_for_step

pytestmark = pytest.mark.timeout(600)


def test_sigterm_during_evaluation_saves_and_exits(tiny_mrc_data, tmp_path):
    run_dir = tmp_path / "run"
    sets = ("train.train_steps=100000", "train.eval_every=2", "train.eval_batches=0",
            "train.save_every=0")
    proc = start(train_command(2, tiny_args(tiny_mrc_data, run_dir, *sets)), tmp_path / "log",
                 env=cpu_env(XPRETRAIN_EVAL_SLEEP_S="3"))
    wait_for_step(run_dir, 2, proc)  # logged; the evaluation of step 2 starts now
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 143 and summary["step"] == 2, log[-3000:]
    assert "evaluation at step 2 stopped by a signal" in log
    assert eval_records(run_dir) == []
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_000002"
