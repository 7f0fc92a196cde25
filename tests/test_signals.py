"""Stopping a `bash launch_scripts/tiny_cpu.sh` job (2 CPU ranks) from outside, by fault
injection: a stop signal to any of its processes saves and exits 128 + signal, the save gets
STOP_GRACE (not DeepSpeed's 30 s) and no more, a SIGKILL anywhere leaves no rank behind, a
hung or killed rank ends the job with the rank named."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dist_utils import (job_process, latest_checkpoint, pids_mentioning, start_script,
                        train_records, wait_for_step, wait_until_gone)

pytestmark = pytest.mark.timeout(300)
SCRIPT = "tiny_cpu.sh"
LONG = ("train.train_steps=100000", "train.eval_every=0", "train.save_every=0",
        "train.log_every=1")


def log_text(tmp_path) -> str:
    return (tmp_path / "log").read_text(errors="replace")


def start_job(tmp_path, data, *sets, **env):
    run_dir = tmp_path / "run"
    proc = start_script(SCRIPT, run_dir, data, tmp_path / "log", *LONG, *sets, **env)
    return proc, run_dir


def wait_for_training(tmp_path, proc, timeout: float = 240) -> None:
    """Until rank 0 has built its engine (its stop handler is installed right after), plus a
    second: the ranks are then inside step 1."""
    deadline = time.monotonic() + timeout
    while "world size 2," not in log_text(tmp_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"job did not start training\n{log_text(tmp_path)[-3000:]}")
        time.sleep(0.1)
    time.sleep(1.0)


def wait_exit(proc, timeout: float, tmp_path) -> int:
    try:
        return proc.wait(timeout=timeout)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"job still running after {timeout}s\n{log_text(tmp_path)[-3000:]}")


@pytest.mark.parametrize("target, signum, step_sleep", [
    ("script", signal.SIGINT, ""),            # Ctrl-C: README promises 130
    ("launcher", signal.SIGTERM, ""),         # the process running DeepSpeed's runner
    ("node_launch", signal.SIGTERM, "4"),     # a 4 s step in flight: it finishes, then saves
    ("rank", signal.SIGTERM, ""),             # one rank: the other follows at the same step
], ids=["script-INT", "runner-TERM", "node_launcher-TERM-slow_step", "rank1-TERM"])
def test_a_stop_signal_to_any_process_saves_and_exits_128_plus_signal(
        tiny_mrc_data, tmp_path, target, signum, step_sleep):
    proc, run_dir = start_job(tmp_path, tiny_mrc_data, XPRETRAIN_STEP_SLEEP_S=step_sleep,
                              STOP_GRACE="60")
    if step_sleep:
        wait_for_training(tmp_path, proc)  # signal in the middle of (slow) step 1
    else:
        wait_for_step(run_dir, 1, proc, timeout=240)
    pid = proc.pid if target == "script" else job_process(run_dir, target, rank=1)
    sent = time.monotonic()
    os.kill(pid, signum)
    assert wait_exit(proc, 120, tmp_path) == 128 + signum, log_text(tmp_path)[-3000:]
    took = time.monotonic() - sent
    state = latest_checkpoint(run_dir)
    assert state is not None and state["world_size"] == 2, log_text(tmp_path)[-3000:]
    assert state["step"] == train_records(run_dir)[-1]["step"] >= 1
    wait_until_gone(str(run_dir), 10)
    assert "error:" not in log_text(tmp_path), log_text(tmp_path)[-3000:]
    print(f"{target} {signal.Signals(signum).name}: exit {128 + signum} after {took:.1f}s, "
          f"checkpoint step {state['step']}")


def test_stop_grace_bounds_the_save_and_kills_late_ranks(tiny_mrc_data, tmp_path):
    """STOP_GRACE=3 with an 8 s step in flight: the ranks cannot finish it in time, so the node
    launcher SIGKILLs them (names them), no checkpoint appears and the job exits 137. (With
    STOP_GRACE=60 a slow step saves: the node_launcher-TERM-slow_step case above.)"""
    proc, run_dir = start_job(tmp_path, tiny_mrc_data, XPRETRAIN_STEP_SLEEP_S="8",
                              STOP_GRACE="3")
    wait_for_training(tmp_path, proc)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert wait_exit(proc, 60, tmp_path) == 128 + signal.SIGKILL, log_text(tmp_path)[-3000:]
    took = time.monotonic() - sent
    assert took < 6.5, took  # killed before the 8 s step could end
    assert latest_checkpoint(run_dir) is None and not train_records(run_dir)
    log = log_text(tmp_path)
    for rank in (0, 1):
        assert f"error: rank {rank} (pid " in log and "STOP_GRACE=3s" in log, log[-3000:]
    wait_until_gone(str(run_dir), 10)
    print(f"STOP_GRACE=3: ranks killed {took:.1f}s after SIGTERM")


def test_sigkill_of_the_script_process_group_leaves_no_rank(tiny_mrc_data, tmp_path):
    """`kill -9 -PGID` of the script: the launcher (own session) gets SIGTERM from the kernel
    as its parent dies; the ranks save and exit within seconds, nothing is left."""
    proc, run_dir = start_job(tmp_path, tiny_mrc_data)
    wait_for_step(run_dir, 2, proc, timeout=240)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    gone = wait_until_gone(str(run_dir), 60)
    state = latest_checkpoint(run_dir)
    assert state is not None and state["step"] >= 2, log_text(tmp_path)[-3000:]
    print(f"process group SIGKILLed: every process gone {time.monotonic() - sent:.1f}s later "
          f"({gone:.1f}s after the script), checkpoint step {state['step']}")


def test_a_stopped_rank_ends_the_job_within_the_collective_timeout(tiny_mrc_data, tmp_path):
    """SIGSTOP of rank 1 (a hung rank): rank 0 gives up after train.collective_timeout_s,
    says so in one line, the node launcher names rank 1 as the one that hung."""
    proc, run_dir = start_job(tmp_path, tiny_mrc_data, "train.collective_timeout_s=10",
                              FAIL_GRACE="3")  # the woken rank 1 then waits on dead rank 0
    wait_for_step(run_dir, 2, proc, timeout=240)
    rank1 = job_process(run_dir, "rank", rank=1)
    sent = time.monotonic()
    os.kill(rank1, signal.SIGSTOP)
    code = wait_exit(proc, 90, tmp_path)
    took = time.monotonic() - sent
    log = log_text(tmp_path)
    assert code not in (0, 130, 143), log[-3000:]
    assert took < 10 + 3 + 20, took  # timeout + FAIL_GRACE + start-up slack
    assert "[rank 0] error: a collective timed out" in log, log[-3000:]
    assert f"error: rank 1 (pid {rank1}) is stopped" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    wait_until_gone(str(run_dir), 10)
    print(f"rank 1 SIGSTOPped: job exit {code} after {took:.1f}s (timeout 10 s)")


def test_a_killed_rank_is_named_and_sets_the_exit_code(tiny_mrc_data, tmp_path):
    proc, run_dir = start_job(tmp_path, tiny_mrc_data)
    wait_for_step(run_dir, 2, proc, timeout=240)
    rank1 = job_process(run_dir, "rank", rank=1)
    sent = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    assert wait_exit(proc, 60, tmp_path) == 128 + signal.SIGKILL, log_text(tmp_path)[-3000:]
    took = time.monotonic() - sent
    log = log_text(tmp_path)
    assert f"error: rank 1 (pid {rank1}) was killed by SIGKILL" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    wait_until_gone(str(run_dir), 10)
    assert not pids_mentioning(str(run_dir))
    print(f"rank 1 SIGKILLed: job exit 137 after {took:.1f}s")


# ------------------------------------------------------ the node launcher's rules, on stand-ins
def _fake_rank(rank: int, body: str):
    """A stand-in rank: a tiny Python process (no torch) running `body`."""
    import subprocess
    import sys

    from pretrain.node_launch import Rank

    code = "import os, signal, sys, time\n" + body
    return Rank(rank, rank, subprocess.Popen([sys.executable, "-c", code]))


ON_TERM_143 = ("signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
               "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\n"
               "time.sleep(30)")


def _supervise(ranks, signum=None, stop_grace=30.0, fail_grace=30.0) -> int:
    from pretrain.node_launch import SignalInbox, Supervisor

    inbox = SignalInbox()
    inbox.signum = signum
    time.sleep(0.3)  # let the stand-ins install their handlers
    return Supervisor(ranks, inbox, stop_grace, fail_grace).run()


@pytest.mark.parametrize("case", ["stop", "stop_wakes_a_stopped_rank", "rank_stopped_itself",
                                  "grace", "killed", "hung", "collective_exit"])
def test_node_launcher_exit_codes_and_messages(case, capsys):
    started = time.monotonic()
    if case == "stop":  # a stop signal reaches every rank; they exit 143; so does the job
        code = _supervise([_fake_rank(0, ON_TERM_143), _fake_rank(1, ON_TERM_143)],
                          signal.SIGTERM)
        assert code == 143
    elif case == "stop_wakes_a_stopped_rank":  # SIGCONT with the stop: it can save
        stopped = ON_TERM_143.replace("time.sleep(30)",
                                      "os.kill(os.getpid(), signal.SIGSTOP); time.sleep(30)")
        code = _supervise([_fake_rank(0, ON_TERM_143), _fake_rank(1, stopped)], signal.SIGTERM)
        assert code == 143
    elif case == "rank_stopped_itself":  # SIGINT to one rank: the others get it too → 130
        code = _supervise([_fake_rank(0, ON_TERM_143),
                           _fake_rank(1, "time.sleep(0.5); sys.exit(130)")])
        assert code == 130
    elif case == "grace":  # a rank that does not stop within STOP_GRACE is named and killed
        code = _supervise([_fake_rank(0, ON_TERM_143), _fake_rank(
            1, "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)")],
            signal.SIGTERM, stop_grace=0.5)
        assert code == 137
        assert "error: rank 1 (pid" in capsys.readouterr().err
    elif case == "killed":  # the killed rank is named, the other stopped, the code is 128 + 9
        ranks = [_fake_rank(0, ON_TERM_143),
                 _fake_rank(1, "time.sleep(0.5); os.kill(os.getpid(), signal.SIGKILL)")]
        code = _supervise(ranks)
        assert code == 137
        assert f"error: rank 1 (pid {ranks[1].pid}) was killed by SIGKILL" in \
            capsys.readouterr().err
    elif case == "hung":  # a stopped rank is named when its peer gives up
        ranks = [_fake_rank(0, "time.sleep(0.8); sys.exit(1)"),
                 _fake_rank(1, "os.kill(os.getpid(), signal.SIGSTOP); time.sleep(30)")]
        code = _supervise(ranks)
        err = capsys.readouterr().err
        assert code == 1 and f"error: rank 1 (pid {ranks[1].pid}) is stopped" in err, err
        assert f"error: rank 0 (pid {ranks[0].pid}) exited 1" in err
    else:  # exit 2 / 3 come from every rank (config, non-finite loss): no one is blamed
        code = _supervise([_fake_rank(0, "sys.exit(3)"),
                           _fake_rank(1, "time.sleep(0.3); sys.exit(3)")])
        assert code == 3 and "error:" not in capsys.readouterr().err
    assert time.monotonic() - started < 10
