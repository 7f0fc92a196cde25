"""Job launcher: DeepSpeed's runner (the `deepspeed` command) with our node launcher.

    python -m pretrain.launcher [deepspeed runner options] --module pretrain.train [options]

Takes the `deepspeed` command's arguments and runs its `runner.main`, with three changes:

* before anything starts, a `pretrain.train` job is validated once, in this process, for the
  world size the runner will launch (hostfile, --include/--exclude, --num_nodes, --num_gpus):
  a bad config is one `error: …` line and exit 2, with no launcher output and no rank started;
* the command the runner spawns on each node (`python -m deepspeed.launcher.launch …`, locally or
  through pdsh) runs `pretrain.node_launch` instead, which forwards stop signals with a grace of
  `STOP_GRACE` seconds (not 30), names failed ranks and exits with a meaningful code;
* SIGTERM / SIGINT are passed on to that child (the runner forwards them only for pdsh, and as a
  kill); this process also asks for SIGTERM when its parent (the launch script) dies
  (PR_SET_PDEATHSIG) and adopts orphaned ranks (PR_SET_CHILD_SUBREAPER) if its child dies.

Exit code: the node launcher's (see `pretrain.node_launch`); 128 + signal if it was killed;
2 for a bad config or bad launcher arguments. Other multi-node backends (OpenMPI, Slurm, …)
start ranks without DeepSpeed's launch.py: they run as DeepSpeed runs them (the ranks still
stop and save if their parent dies).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types

from pretrain import distributed
from pretrain.node_launch import (SignalInbox, describe_exit, descendants, env_seconds,
                                  exit_code_of, kill_leftovers, kill_tree, reap_orphans, say)

DEEPSPEED_NODE_LAUNCHER = "deepspeed.launcher.launch"
NODE_LAUNCHER = "pretrain.node_launch"
TRAIN_MODULE = "pretrain.train"
#: Extra seconds the job launcher gives its node launcher beyond STOP_GRACE before SIGKILL.
MARGIN_S = 60.0


def rewrite(cmd):
    """`cmd` with DeepSpeed's node launcher module replaced by ours (every element containing
    it: the local command, pdsh's remote command, and pdsh's `pkill -f` pattern, which DeepSpeed
    cuts one letter short: `…-m\\ deepspeed.launcher.launc`)."""
    if isinstance(cmd, str):
        return cmd.replace(DEEPSPEED_NODE_LAUNCHER[:-1], NODE_LAUNCHER[:-1])
    return [rewrite(part) if isinstance(part, str) else part for part in cmd]


def planned_world_size(args) -> int:
    """Ranks the runner will start for `args`: its own resource logic (runner.main), without
    its log lines and without touching the environment."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.launcher import runner

    pool = runner.fetch_hostfile(args.hostfile) if os.path.isfile(args.hostfile) else None
    if not pool:
        visible = os.environ.get(get_accelerator().visible_devices_envs()[0], "")
        flags = args.include or args.exclude or args.num_nodes > 1 or args.num_gpus > 0
        if visible and not flags:  # the runner turns it into --include=localhost:<visible>
            return len([x for x in visible.split(",") if x.strip()])
        if args.num_gpus > 0 and not (args.include or args.exclude):
            return args.num_gpus
        pool = {"localhost": get_accelerator().device_count()}
    active = runner.parse_inclusion_exclusion(pool, args.include, args.exclude)
    active = runner.apply_num_nodes_and_gpus(active, args.num_nodes, args.num_gpus)
    return sum(len(slots) for slots in active.values())


class _RewritingLogger:
    """The runner's logger, with our node launcher's name in the `cmd = …` line it logs."""

    def __init__(self, logger):
        self._logger = logger

    def __getattr__(self, name):
        return getattr(self._logger, name)

    def info(self, msg, *args, **kwargs):
        kwargs.setdefault("stacklevel", 2)
        self._logger.info(rewrite(str(msg)), *args, **kwargs)


class Job:
    """The node-launcher child (or pdsh) the runner spawns, and the signals passed to it."""

    def __init__(self, inbox: SignalInbox):
        self.inbox = inbox
        self.child: subprocess.Popen | None = None
        self.pdsh_kill: list[str] | None = None  # pdsh … pkill -f PATTERN (rewritten)
        self.forwarded: int | None = None
        self.urgent_sent = False
        self.deadline: float | None = None

    def _send(self, signum: int) -> None:
        if self.pdsh_kill is not None:  # every node's node launcher, by its command line
            name = signal.Signals(signum).name[3:]
            subprocess.Popen(self.pdsh_kill[:-2] + [f"pkill -{name} -f ", self.pdsh_kill[-1]])
        else:
            try:
                self.child.send_signal(signum)
            except OSError:
                pass

    def forward(self) -> None:
        """Pass a pending stop signal to the child once (and an urgent second SIGINT); SIGKILL
        the child STOP_GRACE + margin later."""
        if self.child is None or self.inbox.signum is None:
            return
        if self.forwarded is None:
            self.forwarded = self.inbox.signum
            self.deadline = time.monotonic() + env_seconds("STOP_GRACE", 600.0) + MARGIN_S
            self._send(self.forwarded)
        if self.inbox.urgent and not self.urgent_sent:
            self.urgent_sent = True
            self._send(signal.SIGINT)

    def tick(self) -> None:
        self.forward()
        if self.deadline is not None and time.monotonic() > self.deadline and self.child:
            say(f"error: node launcher (pid {self.child.pid}) still running "
                f"{MARGIN_S:g}s after STOP_GRACE: killing it and its ranks (SIGKILL)")
            kill_tree(self.child.pid, signal.SIGKILL)
            self.deadline = None


def patch_runner(runner, job: Job) -> None:
    """Route the runner's child process through `job` (module-level shims: the runner module
    calls `subprocess.Popen`, `signal.signal` and `PDSHRunner.get_cmd`)."""
    me = os.getpid()

    class Child(subprocess.Popen):
        def __init__(self, cmd, *args, **kwargs):
            cmd = rewrite(cmd)
            if job.child is None:
                env = dict(kwargs.get("env") or os.environ)
                env["XPRETRAIN_LAUNCHER_PID"] = str(me)
                kwargs["env"] = env
                kwargs["preexec_fn"] = lambda: distributed.parent_death_signal(
                    signal.SIGTERM, expected_parent=me)
            super().__init__(cmd, *args, **kwargs)
            if job.child is None:
                job.child = self

        def wait(self, timeout=None):
            if timeout is not None or self is not job.child:
                return super().wait(timeout)
            while True:
                try:
                    return super().wait(0.2)
                except subprocess.TimeoutExpired:
                    job.tick()

    subprocess_shim = types.ModuleType("subprocess")
    subprocess_shim.__dict__.update(subprocess.__dict__)
    subprocess_shim.Popen = Child
    runner.subprocess = subprocess_shim
    if not isinstance(runner.logger, _RewritingLogger):
        runner.logger = _RewritingLogger(runner.logger)

    def install(signum, handler):  # the runner's pdsh handler kills and exits 1: keep ours
        if signum in (signal.SIGTERM, signal.SIGINT):
            return signal.getsignal(signum)
        return signal.signal(signum, handler)

    signal_shim = types.ModuleType("signal")
    signal_shim.__dict__.update(signal.__dict__)
    signal_shim.signal = install
    runner.signal = signal_shim

    original_get_cmd = runner.PDSHRunner.get_cmd
    if not getattr(original_get_cmd, "_xpretrain", False):
        def get_cmd(self, environment, active_resources):
            cmd, kill_cmd, env = original_get_cmd(self, environment, active_resources)
            job.pdsh_kill = rewrite(kill_cmd)
            return rewrite(cmd), job.pdsh_kill, env

        get_cmd._xpretrain = True
        runner.PDSHRunner.get_cmd = get_cmd


def wait_for_orphans(job: Job, grace: float) -> None:
    """After the child died: its ranks were re-parented here (subreaper) and got SIGTERM from
    their parent-death signal; give them `grace` seconds to save, then SIGKILL what is left."""
    deadline = time.monotonic() + grace
    announced = False
    while descendants(os.getpid()) and time.monotonic() < deadline:
        if not announced:
            say(f"launcher: waiting up to {grace:g}s (STOP_GRACE) for the ranks of the dead "
                f"node launcher to save and exit")
            announced = True
        reap_orphans()
        time.sleep(0.2)
    kill_leftovers()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    inbox = SignalInbox().install()
    if os.environ.pop("XPRETRAIN_NEW_SESSION", "") == "1":  # the launch scripts ask for it
        try:
            os.setsid()  # out of the script's process group: a kill of that group reaches us
        except OSError:  # as our parent's death (SIGTERM below), not as a SIGKILL
            pass         # already a group leader: out of it anyway
    parent = int(os.environ.pop("XPRETRAIN_PARENT_PID", "0") or 0) or None
    distributed.parent_death_signal(signal.SIGTERM, expected_parent=parent)
    distributed.child_subreaper()

    from deepspeed.launcher import runner

    args = runner.parse_args(argv)  # bad arguments: argparse's usage message, exit 2
    if args.module and args.user_script == TRAIN_MODULE and not args.autotuning:
        try:
            world_size = planned_world_size(args)
        except Exception:  # noqa: BLE001 — the runner reports its own argument errors below
            world_size = None
        if world_size is not None:
            from pretrain.train import check

            code = check(args.user_args, world_size)
            if code:
                sys.stderr.flush()
                os._exit(code)
    if inbox.signum is not None:  # stopped before anything started: nothing to save
        os._exit(128 + inbox.signum)

    job = Job(inbox)
    patch_runner(runner, job)
    code = 0
    try:
        runner.main(argv)
    except SystemExit as exc:  # the runner exits with the child's code when it is > 0
        code = exc.code if isinstance(exc.code, int) else 1
    except (ValueError, RuntimeError, AssertionError) as err:  # hostfile, resources, ssh
        if job.child is None:
            say(f"error: {err}")
            os._exit(distributed.EXIT_CONFIG)
        raise
    if job.child is not None:
        code = exit_code_of(job.child.returncode)
        if job.child.returncode < 0:
            say(f"error: node launcher (pid {job.child.pid}) {describe_exit(job.child.returncode)}")
    elif inbox.signum is not None:
        code = 128 + inbox.signum
    wait_for_orphans(job, env_seconds("STOP_GRACE", 600.0))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
