"""Entry point of one training rank: `python -m pretrain.train --config R.yaml [--set k=v …]`.

Run it under a launcher (`deepspeed`, `torchrun`, or `launch_scripts/*.sh`); alone it trains as
a single rank. It parses the command line, loads and validates the config *before* any process
group, engine or data worker exists, then hands over to `pretrain.trainer.run`.

Options:
  --config PATH        YAML recipe (configs/*.yaml)
  --set KEY=VALUE      override one config value (repeatable), e.g. --set train.train_steps=20
  --run-dir DIR        same as --set run_dir=DIR
  --resume auto|none|PATH
                       auto (default): continue from RUN_DIR/checkpoints/latest if there is one;
                       none: start fresh (refused if RUN_DIR already holds checkpoints);
                       PATH: a step_NNNNNN checkpoint folder (or a run/checkpoints folder).
                       Every file is checked against the sizes and CRC-32s of complete.json:
                       auto skips a damaged checkpoint (a warning names tag and file), a named
                       one is refused. Resuming refuses other data or another model shape; other
                       values (train_steps, log_every, …) may change. Another world size goes
                       through a DeepSpeed universal checkpoint made next to the original; of
                       ZeRO stage switches only 1 <-> 2 is possible.
  --stop-at-step N     save and exit 0 after global step N (a planned pause)
  --peak-tflops X      peak TFLOP/s per device for MFU (default: known GPUs, "n/a" on CPU)
  --check              only validate: the config (for WORLD_SIZE ranks, default 1), the data, an
                       explicit --resume path and that no live job holds the run folder
                       (RUN_DIR/job.lock); exit 0 or 2, no process group, nothing written
  --local_rank N       set by the deepspeed launcher; ignored (LOCAL_RANK is read instead)

Exit codes: 0 = reached train.train_steps or --stop-at-step (checkpoint saved);
1 = failure: a traceback on stderr, or one `[rank R] error: a collective timed out … / another
rank is gone` line when a peer hung or died (after `train.collective_timeout_s` at most);
2 = bad command line or config (one `error: …` line from rank 0, the other ranks exit silently;
no worker started); 3 = stopped on non-finite losses (`train.nonfinite`); 128 + signal (143 for
SIGTERM, 130 for SIGINT) = stopped by a signal after finishing the current step and saving a
checkpoint — rerun the same command to resume. Nonzero on a signal so that torchrun / schedulers
treat the run as not finished (and may restart it).

Started by a launcher (RANK or LOCAL_RANK set: `pretrain.launcher`, torchrun, deepspeed), a rank
asks the kernel for SIGTERM when its launcher process dies (PR_SET_PDEATHSIG), so it stops and
saves instead of training on as an orphan; a plain `python -m pretrain.train` does not.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
import warnings

from pretrain import checkpoint, distributed, runlock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pretrain.train",
                                     description="Pretrain on DeepSpeed (one rank): mPMR or VECO, as the recipe's objective says.")
    parser.add_argument("--config", required=True, help="YAML recipe, e.g. configs/tiny_mpmr.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--run-dir", help="run directory (overrides run_dir)")
    parser.add_argument("--resume", default="auto", help="auto | none | checkpoint path")
    parser.add_argument("--stop-at-step", type=int, help="save and exit 0 after this step")
    parser.add_argument("--peak-tflops", type=float, help="peak TFLOP/s per device for MFU")
    parser.add_argument("--check", action="store_true",
                        help="only validate config, data and --resume; exit 0 or 2")
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    return parser


def prepare(argv: list[str] | None = None, world_size: int | None = None, *,
            check_lock: bool = False):
    """Parse and validate for `world_size` ranks (default: the launcher's WORLD_SIZE); returns
    (config, RunOptions) or raises `ConfigError`. `check_lock`: also refuse a run folder another
    live job holds (the one-off check before launch; the ranks' rank 0 takes the lock itself)."""
    from pretrain.config import ConfigError, load_config, validate
    from pretrain.trainer import RunOptions

    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = load_config(args.config, overrides)
    validate(cfg, distributed.world_size_from_env() if world_size is None else world_size)
    if args.stop_at_step is not None and args.stop_at_step <= 0:
        raise ConfigError(f"--stop-at-step must be > 0, got {args.stop_at_step}")
    if args.resume == "none" and checkpoint.list_checkpoints(
            checkpoint.checkpoint_root(cfg.run_dir)):
        raise ConfigError(f"--resume none but {cfg.run_dir} already holds checkpoints; use "
                          f"--resume auto to continue, or another --run-dir to start over")
    if args.resume not in ("auto", "none"):
        try:
            checkpoint.find_resume(cfg.run_dir, args.resume)
        except checkpoint.ResumeError as err:
            raise ConfigError(str(err)) from None
    if check_lock:
        try:
            runlock.check_free(cfg.run_dir)
        except runlock.RunDirBusy as err:
            raise ConfigError(str(err)) from None
    return cfg, RunOptions(resume=args.resume, stop_at_step=args.stop_at_step,
                           peak_tflops=args.peak_tflops)


def quiet_known_warnings() -> None:
    """Silence warnings PLATFORM.md lists as harmless, so real problems stand out."""
    warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed")
    warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.* is deprecated")


def check(argv: list[str], world_size: int) -> int:
    """What `--check` does, callable in-process (`pretrain.launcher` validates the run once,
    before any rank starts): returns 0, or prints one `error: …` line and returns 2."""
    from pretrain.config import ConfigError

    quiet_known_warnings()
    try:
        prepare(argv, world_size, check_lock=True)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return distributed.EXIT_CONFIG
    return distributed.EXIT_OK


def _rank_from_env() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> None:
    """Validate, train, and exit the process (never returns)."""
    from pretrain.config import ConfigError

    if distributed.started_by_launcher():  # stop (and save) if the launcher dies
        distributed.parent_death_signal(signal.SIGTERM)
    quiet_known_warnings()
    args = build_parser().parse_args(argv)

    try:
        cfg, options = prepare(argv, check_lock=args.check)
    except ConfigError as err:
        if args.check or _rank_from_env() == 0:  # every rank reaches the same verdict
            print(f"error: {err}", file=sys.stderr, flush=True)
        os._exit(distributed.EXIT_CONFIG)
    if args.check:
        print(f"config OK: {args.config} for {distributed.world_size_from_env()} rank(s), "
              f"run dir {cfg.run_dir}", flush=True)
        os._exit(distributed.EXIT_OK)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from deepspeed.utils import logger as ds_logger

    from pretrain.trainer import run

    ds_logger.setLevel(logging.WARNING)
    try:
        code = run(cfg, options)
    except (checkpoint.ResumeError, runlock.RunDirBusy) as err:  # the same verdict on every rank
        if distributed.rank() == 0:
            print(f"error: {err}", file=sys.stderr, flush=True)
        distributed.finish(distributed.EXIT_CONFIG, synchronize=False)
    except Exception as err:  # noqa: BLE001 — report, then leave without waiting for other ranks
        why = distributed.collective_failure(err)
        if why is None:
            traceback.print_exc()
        else:  # a hung or dead peer: one line, the launcher names the rank
            import torch.distributed as dist

            rank = dist.get_rank() if dist.is_initialized() else _rank_from_env()
            print(f"[rank {rank}] error: {why}", file=sys.stderr, flush=True)
        distributed.finish(distributed.EXIT_FAILED, synchronize=False)
    distributed.finish(code)


if __name__ == "__main__":
    main()
