"""One job per run folder: the lock names its holder, refuses a second job, and is replaced
when its holder is gone (dead pid on this host, an old heartbeat from another host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pretrain import runlock


def test_second_holder_is_refused_and_release_frees(tmp_path):
    first = runlock.RunLock(tmp_path).acquire()
    holder = json.loads((tmp_path / runlock.LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["host"]
    with pytest.raises(runlock.RunDirBusy, match=f"pid {os.getpid()} on {holder['host']}"):
        runlock.RunLock(tmp_path).acquire()
    with pytest.raises(runlock.RunDirBusy):
        runlock.check_free(tmp_path)
    first.release()
    assert not (tmp_path / runlock.LOCK_NAME).exists()
    runlock.check_free(tmp_path)
    runlock.RunLock(tmp_path).acquire().release()


def test_lock_of_a_dead_process_is_stale(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(proc.stdout)
    (tmp_path / runlock.LOCK_NAME).write_text(json.dumps(
        {"host": runlock.socket.gethostname(), "pid": dead, "create_time": 1.0}))
    runlock.check_free(tmp_path)  # no error: stale
    lock = runlock.RunLock(tmp_path).acquire()
    assert f"pid {dead} is not running" in capsys.readouterr().err
    assert json.loads((tmp_path / runlock.LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_reused_pid_and_other_hosts(tmp_path, monkeypatch):
    path = tmp_path / runlock.LOCK_NAME
    # this very pid, but another start time: the pid was reused by another program
    path.write_text(json.dumps({"host": runlock.socket.gethostname(), "pid": os.getpid(),
                                "create_time": 12.0}))
    assert "another process" in runlock.stale_reason(path, json.loads(path.read_text()))
    # another host: alive while its heartbeat is fresh, stale once it is old
    path.write_text(json.dumps({"host": "node-that-is-not-here", "pid": 1, "create_time": 1.0}))
    with pytest.raises(runlock.RunDirBusy, match="node-that-is-not-here"):
        runlock.check_free(tmp_path)
    old = time.time() - runlock.STALE_AFTER_S - 5
    os.utime(path, (old, old))
    assert "no heartbeat" in runlock.stale_reason(path, json.loads(path.read_text()))


def test_heartbeat_refreshes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_S", 0.05)
    lock = runlock.RunLock(tmp_path).acquire()
    path = tmp_path / runlock.LOCK_NAME
    os.utime(path, (1.0, 1.0))
    time.sleep(0.3)
    assert path.stat().st_mtime > time.time() - 5
    lock.release()


def test_a_second_job_on_a_running_folder_is_refused(tiny_mrc_data, tmp_path):
    """While a 2-rank job trains, a second one on its run folder stops at start with one
    `error:` line naming the holder — as a plain rank and through the launch script (whose
    check runs before any rank starts) — and the first job is unaffected."""
    import signal

    from dist_utils import (ROOT, cpu_env, error_lines, free_port, run, start, tiny_args,
                            train_command, train_records, wait_for_step)

    run_dir = tmp_path / "run"
    sets = ("train.train_steps=100000", "train.eval_every=0", "train.save_every=0")
    first = start(train_command(2, tiny_args(tiny_mrc_data, run_dir, *sets)), tmp_path / "log")
    try:
        wait_for_step(run_dir, 2, first)
        holder = json.loads((run_dir / runlock.LOCK_NAME).read_text())
        second = run(train_command(0, tiny_args(tiny_mrc_data, run_dir, *sets)), check=False)
        env = cpu_env(RUN_DIR=str(run_dir), DATA_DIR=str(tiny_mrc_data),
                      MASTER_PORT=str(free_port()))
        script = run(["bash", str(ROOT / "launch_scripts" / "tiny_cpu.sh")], env=env,
                     check=False)
        for proc in (second, script):
            errors = error_lines(proc.stderr)
            assert proc.returncode == 2, proc.stderr[-3000:]
            assert len(errors) == 1 and "in use by another job" in errors[0] and \
                f"pid {holder['pid']}" in errors[0], proc.stderr[-3000:]
        steps = [r["step"] for r in train_records(run_dir)]
        assert steps == list(range(1, len(steps) + 1))  # one writer only
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert json.loads((run_dir / "summary.json").read_text())["exit_code"] == 143
    assert not (run_dir / runlock.LOCK_NAME).exists()  # released on the way out
