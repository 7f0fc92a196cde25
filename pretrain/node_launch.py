"""Node launcher: starts this node's ranks and supervises them (replaces DeepSpeed's
`deepspeed.launcher.launch`; `pretrain.launcher` substitutes it in the command DeepSpeed's runner
spawns, locally and through pdsh).

    python -m pretrain.node_launch --world_info=B64 --master_addr=A --master_port=P \\
        [--node_rank=N] [--module] [--no_python] [--no_local_rank] [--bind_cores_to_rank] … \\
        SCRIPT_OR_MODULE [args…]

Same arguments (DeepSpeed's own `parse_args`) and the same rank environment as DeepSpeed's
launch.py (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_SIZE, CROSS_RANK, CROSS_SIZE, MASTER_ADDR,
MASTER_PORT, the accelerator's *_VISIBLE_DEVICES, numactl binding), which falls short only in
that it SIGKILLs the ranks 30 s after forwarding a signal and exits 1 whatever happened. Here:

* SIGTERM / SIGINT → the same signal to every rank, once (repeats are ignored, except a second
  SIGINT 2 s or more after the first: Ctrl-C again, passed on, the ranks stop at once without a
  checkpoint); the ranks finish their step, save and exit 128 + signal; a rank still running
  `STOP_GRACE` seconds later (default 600) is named and SIGKILLed. A rank stopped by a signal of
  its own (sent to it directly, or its parent-death signal) stops the others the same way (they
  all reach the decision through the per-step all-reduce).
* A rank that fails (any other non-zero exit or death by a signal) is named on stderr
  (`error: rank 1 (pid N) was killed by SIGKILL` / `exited 1`); the others get SIGCONT + SIGTERM
  and are SIGKILLed `FAIL_GRACE` seconds later (default 10: a rank cannot save without its
  peers, so there is nothing to wait for). A rank found stopped (state T) is named as hung.
* Every rank gets PR_SET_PDEATHSIG = SIGTERM (if this launcher dies, the ranks stop and save);
  this launcher asks for the same about its own parent and adopts orphaned descendants
  (PR_SET_CHILD_SUBREAPER), so that no rank or loader worker outlives it.

Exit code: 0 when every rank exited 0; 128 + signal when the ranks stopped on a signal (each
saved a checkpoint); otherwise the first failed rank's code (128 + signal if it was killed, 137
when this launcher had to SIGKILL ranks after the grace); 2 / 3 as the ranks report them (bad
config / non-finite loss).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import psutil

from pretrain import distributed

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Exit codes the ranks reach together (no rank is to blame): bad config, non-finite loss.
COLLECTIVE_CODES = (2, 3)
POLL_S = 0.1


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        print(f"warning: {name}={raw!r} is not a number of seconds; using {default:g}",
              file=sys.stderr)
        return default


def describe_exit(returncode: int) -> str:
    """`exited 1` / `was killed by SIGKILL`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited {returncode}"


def exit_code_of(returncode: int) -> int:
    """A shell-style exit code: 128 + signal for a process killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


def is_stopped(pid: int) -> bool:
    """`pid` is stopped (SIGSTOP) or traced."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED,
                                                psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:  # gone already
        return []


def kill_tree(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal `pid` and everything below it (children first collected, then signalled)."""
    for target in [*descendants(pid), pid]:
        try:
            os.kill(target, signum)
        except OSError:
            pass


def reap_orphans(keep: set[int] = frozenset(), kill: bool = False) -> None:
    """Reap exited children adopted as subreaper, but not those in `keep` (the ranks: their
    Popen objects must read their exit status themselves). `kill`: SIGKILL the live ones too,
    with their subtrees (the loader workers of a dead rank: they hold its sockets open, so its
    peers would not see it gone until the workers notice, seconds later)."""
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        if kill:
            kill_tree(child.pid, signal.SIGKILL)
        try:
            os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def kill_leftovers(keep: set[int] = frozenset()) -> None:
    """SIGKILL whatever is still below this process (adopted loader workers) and reap it."""
    for pid in descendants(os.getpid()):
        if pid in keep:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reap_orphans(keep)
        if not [p for p in descendants(os.getpid()) if p not in keep]:
            break
        time.sleep(0.05)


class SignalInbox:
    """TERM / INT handler that records the first signal; repeats are ignored, except a SIGINT
    at least `URGENT_AFTER_S` after the first (Ctrl-C pressed again, the ranks' own rule, see
    `distributed.StopSignal`), which marks the stop urgent: no checkpoint, stop at once."""

    URGENT_AFTER_S = 2.0

    def __init__(self) -> None:
        self.signum: int | None = None
        self.since = 0.0
        self.urgent = False

    def install(self) -> "SignalInbox":
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self.since = signum, now
        elif signum == signal.SIGINT and now - self.since >= self.URGENT_AFTER_S:
            self.urgent = True


class Rank:
    def __init__(self, rank: int, local_rank: int, proc: subprocess.Popen):
        self.rank, self.local_rank, self.proc = rank, local_rank, proc
        self.returncode: int | None = None
        self.killed_by_us = False  # SIGKILLed after a grace: reported when it happened
        self.told_to_stop = False  # got SIGTERM from us after another rank failed

    @property
    def pid(self) -> int:
        return self.proc.pid

    def name(self) -> str:
        return f"rank {self.rank} (pid {self.pid})"

    def signal(self, signum: int) -> None:
        try:
            self.proc.send_signal(signum)
        except OSError:
            pass


def say(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


class Supervisor:
    """Waits for the ranks, forwards stop signals, enforces the graces, picks the exit code."""

    def __init__(self, ranks: list[Rank], inbox: SignalInbox, stop_grace: float,
                 fail_grace: float):
        self.ranks, self.inbox = ranks, inbox
        self.stop_grace, self.fail_grace = stop_grace, fail_grace
        self.stop_signal: int | None = None  # the signal the ranks were told to stop with
        self.stop_codes: list[int] = []
        self.failure: tuple[Rank, int] | None = None
        self.deadline: float | None = None
        self.deadline_reason = ""
        self.killed_any = False
        self.urgent_sent = False

    def alive(self) -> list[Rank]:
        return [r for r in self.ranks if r.returncode is None]

    def _set_deadline(self, seconds: float, reason: str) -> None:
        when = time.monotonic() + seconds
        if self.deadline is None or when < self.deadline:
            self.deadline, self.deadline_reason = when, reason

    def _stop_all(self, signum: int, why: str) -> None:
        """Forward a stop signal to the running ranks (once per job)."""
        if self.stop_signal is not None:
            return
        self.stop_signal = signum
        targets = self.alive()
        if targets:
            say(f"node launcher: {why}: {signal.Signals(signum).name} to "
                f"{', '.join(f'rank {r.rank}' for r in targets)}; waiting up to "
                f"{self.stop_grace:g}s (STOP_GRACE) for their checkpoint")
        for r in targets:
            r.signal(signum)
            if is_stopped(r.pid):  # SIGSTOP, a debugger: let it act on the signal
                say(f"node launcher: {r.name()} is stopped: SIGCONT so that it can stop and save")
                r.signal(signal.SIGCONT)
        name = signal.Signals(signum).name
        self._set_deadline(self.stop_grace, f"within STOP_GRACE={self.stop_grace:g}s of {name}")

    def _fail(self, failed: Rank, returncode: int) -> None:
        if self.failure is not None:
            return
        self.failure = (failed, returncode)
        others = self.alive()
        if returncode not in COLLECTIVE_CODES:
            for r in others:
                if is_stopped(r.pid):
                    say(f"error: {r.name()} is stopped (SIGSTOP or traced): it hung the job")
            say(f"error: {failed.name()} {describe_exit(returncode)}")
        for r in others:
            r.told_to_stop = True
            if returncode not in COLLECTIVE_CODES:  # (those exit on their own, like this one)
                r.signal(signal.SIGCONT)  # a stopped rank cannot act on SIGTERM: wake it first
                r.signal(signal.SIGTERM)
        self._set_deadline(self.fail_grace, f"within FAIL_GRACE={self.fail_grace:g}s of "
                                            f"rank {failed.rank}'s exit")

    def _on_exit(self, r: Rank) -> None:
        code = r.returncode
        if code == 0 or r.killed_by_us:
            return
        stop_codes = tuple(128 + s for s in STOP_SIGNALS)
        if self.failure is None and (code in stop_codes or -code in STOP_SIGNALS):
            # stopped on a signal (sent to it, or the parent-death signal; a signal before its
            # handler was installed kills it): the others stop at the same step
            self.stop_codes.append(exit_code_of(code))
            self._stop_all(exit_code_of(code) - 128, f"rank {r.rank} stopped on a signal")
            return
        if r.told_to_stop:
            return  # its peer failed first; that one is named
        self._fail(r, code)

    def run(self) -> int:
        next_scan = 0.0
        while True:
            if self.inbox.signum is not None and self.stop_signal is None:
                self._stop_all(self.inbox.signum, f"got {signal.Signals(self.inbox.signum).name}")
            if self.inbox.urgent and not self.urgent_sent:
                self.urgent_sent = True
                say("node launcher: SIGINT again: passing it on, the ranks stop at once "
                    "(no checkpoint)")
                for r in self.alive():
                    r.signal(signal.SIGINT)
            exited = []
            for r in self.alive():
                rc = r.proc.poll()
                if rc is not None:
                    r.returncode = rc
                    exited.append(r)
            # a rank killed by a signal is the cause, a peer that noticed it is the effect
            for r in sorted(exited, key=lambda r: (r.returncode >= 0, r.rank)):
                self._on_exit(r)
            if exited or time.monotonic() > next_scan:
                reap_orphans({r.pid for r in self.ranks}, kill=True)
                next_scan = time.monotonic() + 2.0
            if not self.alive():
                break
            if self.deadline is not None and time.monotonic() > self.deadline:
                for r in self.alive():
                    say(f"error: {r.name()} did not exit {self.deadline_reason}: killing it "
                        f"(SIGKILL)")
                    r.killed_by_us = True
                    self.killed_any = True
                    kill_tree(r.pid, signal.SIGKILL)
                self.deadline = time.monotonic() + 30  # SIGKILL cannot be refused; just reap
                self.deadline_reason = "after SIGKILL"
            time.sleep(POLL_S)
        kill_leftovers({r.pid for r in self.ranks})
        return self.exit_code()

    def exit_code(self) -> int:
        if self.failure is not None:
            return exit_code_of(self.failure[1])
        if self.killed_any:
            return 128 + signal.SIGKILL
        if self.stop_signal is not None and self.stop_codes:  # (all 0: finished anyway)
            if self.inbox.signum is not None:
                return 128 + self.inbox.signum
            # a rank told directly: SIGINT wins (its peers report the default SIGTERM code)
            return 128 + signal.SIGINT if 128 + signal.SIGINT in self.stop_codes else \
                128 + signal.SIGTERM
        return 0


def rank_commands(args, world_info: dict, base_env: dict) -> list[tuple[int, int, list, dict]]:
    """(global rank, local rank, command, environment) of each rank on this node, exactly as
    DeepSpeed's launch.py builds them."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.constants import CROSS_RANK, CROSS_SIZE
    from deepspeed.utils import get_numactl_cmd, logger

    node_list = list(world_info.keys())
    nnodes = len(node_list)
    local_node = node_list[args.node_rank]
    local_accelerator_ids = world_info[local_node]
    num_local_procs = len(local_accelerator_ids)

    global_rank_mapping = defaultdict(list)
    curr_global_rank = 0
    dist_world_size = 0
    for node_id in node_list:
        for _ in world_info[node_id]:
            global_rank_mapping[node_id].append(curr_global_rank)
            curr_global_rank += 1
            dist_world_size += 1
    logger.info(f"nnodes={nnodes}, num_local_procs={num_local_procs}, node_rank={args.node_rank}, "
                f"world size {dist_world_size}")

    env = dict(base_env)
    get_accelerator().set_visible_devices_envs(env, local_accelerator_ids)
    env["MASTER_ADDR"] = args.master_addr
    env["MASTER_PORT"] = str(args.master_port)
    env["WORLD_SIZE"] = str(dist_world_size)
    env[CROSS_RANK] = str(args.node_rank)
    env[CROSS_SIZE] = str(nnodes)
    env["LOCAL_SIZE"] = str(num_local_procs)

    out = []
    for local_proc in range(num_local_procs):
        dist_rank = global_rank_mapping[local_node][local_proc]
        local_rank = dist_rank % num_local_procs
        rank_env = dict(env, RANK=str(dist_rank), LOCAL_RANK=str(local_rank))
        cmd: list[str] = []
        if args.bind_cores_to_rank:
            cores_per_rank, numactl_cmd = get_numactl_cmd(args.bind_core_list, num_local_procs,
                                                           local_rank)
            rank_env["OMP_NUM_THREADS"] = f"{cores_per_rank}"
            cmd += numactl_cmd
        if not args.no_python:
            cmd += [sys.executable, "-u"]
            if args.module:
                cmd.append("-m")
        elif args.module:
            raise ValueError("Don't use both the '--no_python' flag and the '--module' flag at "
                             "the same time.")
        cmd.append(args.training_script)
        if not args.no_local_rank:
            cmd.append(f"--local_rank={local_rank}")
        cmd += args.training_script_args
        out.append((dist_rank, local_rank, cmd, rank_env))
    return out


def spawn(cmd: list[str], env: dict, log_path: str | None) -> subprocess.Popen:
    parent = os.getpid()

    def in_child() -> None:  # between fork and exec
        distributed.parent_death_signal(signal.SIGTERM, expected_parent=parent)

    if log_path is None:
        return subprocess.Popen(cmd, env=env, preexec_fn=in_child)
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=log, preexec_fn=in_child)


def main() -> None:
    inbox = SignalInbox().install()  # from the start: a stop before the ranks exist is honoured
    parent = int(os.environ.pop("XPRETRAIN_LAUNCHER_PID", "0") or 0) or None
    distributed.parent_death_signal(signal.SIGTERM, expected_parent=parent)
    distributed.child_subreaper()

    from deepspeed.launcher.launch import PID_FILE_BASEPATH, parse_args
    from deepspeed.utils import logger, set_log_level_from_string

    args = parse_args()
    if args.quiet:
        args.log_level = "error"
    set_log_level_from_string(args.log_level)
    if args.world_info == "None":
        raise ValueError("world_info can not be None")
    world_info = json.loads(base64.urlsafe_b64decode(args.world_info))
    logger.info(f"WORLD INFO DICT: {world_info}")

    pid_file = None
    if args.save_pid:
        print(f"launcher pid: {os.getpid()}")
        pid_file = os.path.join(PID_FILE_BASEPATH, f"{args.save_pid}.deepspeed")
        assert not os.path.isfile(pid_file), "pid file exists but shouldn't"
        with open(pid_file, "w") as fd:
            fd.write(f"{os.getpid()}")

    log_prefix = None
    if args.enable_each_rank_log != "None":
        if os.path.isfile(args.enable_each_rank_log):
            raise ValueError(f"{args.enable_each_rank_log} should not be a file, it should be a "
                             f"directory.")
        os.makedirs(args.enable_each_rank_log, exist_ok=True)
        log_prefix = os.path.join(args.enable_each_rank_log, time.strftime("%Y%m%d%H%M%S"))

    ranks: list[Rank] = []
    try:
        for dist_rank, local_rank, cmd, env in rank_commands(args, world_info, dict(os.environ)):
            if inbox.signum is not None:
                break  # stopped while starting: start no more ranks
            proc = spawn(cmd, env, f"{log_prefix}_rank{dist_rank}.log" if log_prefix else None)
            logger.info(f"rank {dist_rank}: process {proc.pid} spawned with command: {cmd}")
            ranks.append(Rank(dist_rank, local_rank, proc))
        stop_grace = env_seconds("STOP_GRACE", 600.0)
        fail_grace = env_seconds("FAIL_GRACE", 10.0)
        code = Supervisor(ranks, inbox, stop_grace, fail_grace).run()
        if not ranks and inbox.signum is not None:
            code = 128 + inbox.signum
    finally:
        if pid_file and os.path.isfile(pid_file):
            os.remove(pid_file)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
