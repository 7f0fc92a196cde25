"""Entry points: a bad config fails fast with one line, and the launch scripts work both as
`bash launch_scripts/X.sh` and as `deepspeed launch_scripts/X.sh` (tiny CPU recipe)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from dist_utils import (ROOT, VENV_BIN, cpu_env, free_port, pids_mentioning, run, start, tiny_args,
                        train_records)

pytestmark = pytest.mark.timeout(600)
SCRIPTS = ["tiny_cpu.sh", "mpmr_base.sh", "mpmr_large.sh", "veco_large.sh", "mglm_large.sh"]


@pytest.mark.parametrize("sets, message", [
    (["train.bogus_key=1"], "unknown key 'train.bogus_key'"),
    (["train.global_batch_size=6"], "not divisible"),
])
def test_bad_config_is_one_error_line_and_no_worker(tiny_mrc_data, tmp_path, sets, message):
    env = cpu_env()
    env.pop("PYTHONWARNINGS")  # what a user sees: no library warnings around the error
    proc = run([sys.executable, "-m", "pretrain.train",
                *tiny_args(tiny_mrc_data, tmp_path / "run", *sets)], check=False, env=env)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


@pytest.mark.parametrize("sets, message", [
    (["train.bogus_key=1"], "unknown key 'train.bogus_key'"),
    (["train.global_batch_size=4"], "world size (2)"),  # checked for the ranks to be launched
])
def test_bad_config_through_the_script_is_one_error_line_before_any_launcher(
        tiny_mrc_data, tmp_path, sets, message):
    """The launch script validates once (in `pretrain.launcher`, for the world size it will
    launch) before DeepSpeed's runner, the node launcher or a rank exist: one line, exit 2."""
    env = cpu_env(RUN_DIR=str(tmp_path / "run"), DATA_DIR=str(tiny_mrc_data))
    env.pop("PYTHONWARNINGS")
    args = [x for item in sets for x in ("--set", item)]
    proc = run(["bash", str(ROOT / "launch_scripts" / "tiny_cpu.sh"), *args], check=False,
               env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not proc.stdout.strip(), proc.stdout  # no runner / launcher lines


def test_a_rank_started_by_a_launcher_prints_a_config_error_only_on_rank_0(tiny_mrc_data,
                                                                          tmp_path):
    args = tiny_args(tiny_mrc_data, tmp_path / "run", "train.bogus_key=1")
    for rank, expected in (("0", 1), ("1", 0)):
        env = cpu_env(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE="2")
        env.pop("PYTHONWARNINGS")
        proc = run([sys.executable, "-m", "pretrain.train", *args], check=False, env=env)
        assert proc.returncode == 2
        assert len([x for x in proc.stderr.splitlines() if x.strip()]) == expected, proc.stderr


def test_check_validates_an_explicit_resume_path_without_a_process_group(tiny_mrc_data,
                                                                        tmp_path):
    args = tiny_args(tiny_mrc_data, tmp_path / "run")
    bad = run([sys.executable, "-m", "pretrain.train", "--check", *args, "--resume",
               str(tmp_path / "nowhere")], check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "nowhere" in bad.stderr
    assert not (tmp_path / "run").exists()


def test_resume_none_refuses_a_run_dir_with_checkpoints(tiny_mrc_data, tmp_path):
    tag = tmp_path / "run" / "checkpoints" / "step_000010"
    tag.mkdir(parents=True)
    (tag / "complete.json").write_text("{}")
    proc = run([sys.executable, "-m", "pretrain.train", *tiny_args(tiny_mrc_data, tmp_path / "run"),
                "--resume", "none"], check=False)
    assert proc.returncode == 2 and "--resume auto" in proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_valid_bash_and_python(script, tmp_path):
    text = (ROOT / "launch_scripts" / script).read_text()
    ast.parse(text)  # the Python view
    assert text.startswith('""":"\n')
    shell = text[:text.index('\n":"""\n')]  # bash stops at its `exit` before this line
    assert "exit" in shell.splitlines()[-1]
    (tmp_path / "shell.sh").write_text(shell)
    subprocess.run(["bash", "-n", str(tmp_path / "shell.sh")], check=True)  # the shell view


def rank_settings(script: str, **env: str) -> tuple[dict[str, str], list[str]]:
    out = subprocess.run(["bash", str(ROOT / "launch_scripts" / script), "--rank-settings"],
                         env={**cpu_env(), **env}, check=True, stdout=subprocess.PIPE).stdout
    items = [x for x in out.decode().split("\0") if x]
    rank_env = dict(x[4:].split("=", 1) for x in items if x.startswith("env:"))
    return rank_env, [x[4:] for x in items if x.startswith("arg:")]


def test_gpu_recipes_set_nccl_and_take_env_overrides():
    rank_env, args = rank_settings("mpmr_large.sh")
    assert rank_env["NCCL_IB_DISABLE"] == "0" and rank_env["NCCL_SOCKET_IFNAME"] == "^lo,docker0"
    assert args[:2] == ["--config", str(ROOT / "configs" / "mpmr_large.yaml")]
    assert args[args.index("--resume") + 1] == "auto"
    rank_env, args = rank_settings("mpmr_base.sh", NCCL_SOCKET_IFNAME="ib0", NCCL_IB_HCA="mlx5",
                                   DATA_DIR="d/en,d/de", RUN_DIR="r", INIT_FROM="m",
                                   RESUME="none", CONFIG="c.yaml")
    assert rank_env["NCCL_SOCKET_IFNAME"] == "ib0" and rank_env["NCCL_IB_HCA"] == "mlx5"
    assert args == ["--config", "c.yaml", "--run-dir", "r", "--resume", "none",
                    "--set", "data.paths=[d/en,d/de]", "--set", "model.init_from=m"]
    missing = subprocess.run(["bash", str(ROOT / "launch_scripts" / "mpmr_large.sh")],
                             env={**cpu_env(), "HOSTFILE": "/nonexistent/hosts"},
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "hostfile.example" in missing.stderr


def test_tiny_cpu_bash_then_deepspeed_form(tiny_mrc_data, tmp_path):
    """`bash launch_scripts/tiny_cpu.sh` trains 2 CPU ranks; `deepspeed launch_scripts/
    tiny_cpu.sh` (the launcher runs the file with Python; 1 rank here) resumes it by default."""
    run_dir = tmp_path / "run"
    env = cpu_env(RUN_DIR=str(run_dir), DATA_DIR=str(tiny_mrc_data), MASTER_PORT=str(free_port()))
    script = str(ROOT / "launch_scripts" / "tiny_cpu.sh")
    run(["bash", script, "--set", "train.train_steps=2", "--set", "train.eval_every=0"], env=env)
    assert [r["step"] for r in train_records(run_dir)] == [1, 2]
    state = json.loads((run_dir / "checkpoints" / "step_000002" / "complete.json").read_text())
    assert state["world_size"] == 2
    assert "OMP_NUM_THREADS=1" in (run_dir / ".deepspeed_env").read_text()

    out = run([str(VENV_BIN / "deepspeed"), "--master_port", str(free_port()), script,
               "--set", "train.train_steps=4", "--set", "train.eval_every=0"], env=env)
    assert "resuming from" in out.stdout
    assert [r["step"] for r in train_records(run_dir)] == [1, 2, 3, 4]
    state = json.loads((run_dir / "checkpoints" / "step_000004" / "complete.json").read_text())
    assert state["world_size"] >= 1 and state["step"] == 4


def test_sigterm_to_the_script_reaches_every_rank(tiny_mrc_data, tmp_path):
    """`kill PID` of `bash launch_scripts/tiny_cpu.sh` (what timeout, a container stop or a
    scheduler sends) makes every rank save a checkpoint and leaves no process behind."""
    import os
    import signal
    import time

    run_dir = tmp_path / "run"
    env = cpu_env(RUN_DIR=str(run_dir), DATA_DIR=str(tiny_mrc_data), MASTER_PORT=str(free_port()))
    proc = start(["bash", str(ROOT / "launch_scripts" / "tiny_cpu.sh"),
                  "--set", "train.train_steps=100000", "--set", "train.eval_every=0",
                  "--set", "train.save_every=0", "--set", "train.log_every=1"],
                 tmp_path / "log", env=env)
    deadline = time.time() + 240
    while time.time() < deadline and len(train_records(run_dir)) < 3:
        time.sleep(0.5)
    assert len(train_records(run_dir)) >= 3, (tmp_path / "log").read_text()[-3000:]
    os.kill(proc.pid, signal.SIGTERM)  # the script only, not its process group
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((run_dir / "checkpoints" / latest / "complete.json").read_text())
    assert state["world_size"] == 2 and state["step"] >= 3
    assert not pids_mentioning(str(run_dir))


def test_the_runner_spawns_our_node_launcher_locally_and_through_pdsh(tmp_path, monkeypatch):
    """`pretrain.launcher` swaps DeepSpeed's node launcher for `pretrain.node_launch` in the
    runner's local command and in pdsh's remote command and `pkill -f` pattern, and validates
    for the world size the runner will start."""
    from deepspeed.launcher import runner

    from pretrain import launcher
    from pretrain.node_launch import SignalInbox

    for name in ("subprocess", "signal", "logger"):
        monkeypatch.setattr(runner, name, getattr(runner, name))
    monkeypatch.setattr(runner.PDSHRunner, "get_cmd", runner.PDSHRunner.get_cmd)
    job = launcher.Job(SignalInbox())
    launcher.patch_runner(runner, job)
    hosts = tmp_path / "hosts"
    hosts.write_text("node-a slots=4\nnode-b slots=4\n")
    args = runner.parse_args(["--hostfile", str(hosts), "--num_gpus", "2", "--module",
                              "pretrain.train", "--config", "c.yaml"])
    assert launcher.planned_world_size(args) == 4
    include = runner.parse_args(["--hostfile", str(hosts), "--include", "node-b:1,3",
                                 "--module", "pretrain.train"])
    assert launcher.planned_world_size(include) == 2
    cmd, kill_cmd, _ = runner.PDSHRunner(args, "B64").get_cmd({}, {"node-a": [0, 1],
                                                                    "node-b": [0, 1]})
    assert "pretrain.node_launch" in cmd and not any("deepspeed.launcher.launch" in str(c)
                                                     for c in cmd + kill_cmd)
    assert kill_cmd[-1].endswith("-m\\ pretrain.node_launc") and job.pdsh_kill == kill_cmd
    local = [sys.executable, "-u", "-m", "deepspeed.launcher.launch", "--world_info=X", "s.py"]
    assert launcher.rewrite(local)[3] == "pretrain.node_launch"
