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
                       Resuming refuses other data or another model shape; other values
                       (train_steps, log_every, …) may change. Another world size goes through a
                       DeepSpeed universal checkpoint made next to the original.
  --stop-at-step N     save and exit 0 after global step N (a planned pause)
  --peak-tflops X      peak TFLOP/s per device for MFU (default: known GPUs, "n/a" on CPU)
  --local_rank N       set by the deepspeed launcher; ignored (LOCAL_RANK is read instead)

Exit codes: 0 = reached train.train_steps or --stop-at-step (checkpoint saved);
1 = failure (traceback on stderr); 2 = bad command line or config (one `error: …` line, no
worker started); 128 + signal (143 for SIGTERM, 130 for SIGINT) = stopped by a signal after
finishing the current step and saving a checkpoint — rerun the same command to resume. Nonzero
on a signal so that torchrun / schedulers treat the run as not finished (and may restart it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings

from pretrain import checkpoint, distributed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pretrain.train",
                                     description="Train mPMR on DeepSpeed (one rank).")
    parser.add_argument("--config", required=True, help="YAML recipe, e.g. configs/tiny_mpmr.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--run-dir", help="run directory (overrides run_dir)")
    parser.add_argument("--resume", default="auto", help="auto | none | checkpoint path")
    parser.add_argument("--stop-at-step", type=int, help="save and exit 0 after this step")
    parser.add_argument("--peak-tflops", type=float, help="peak TFLOP/s per device for MFU")
    parser.add_argument("--local_rank", "--local-rank", type=int, help=argparse.SUPPRESS)
    return parser


def prepare(argv: list[str] | None = None):
    """Parse and validate; returns (config, RunOptions) or raises `ConfigError`."""
    from pretrain.config import ConfigError, load_config, validate
    from pretrain.trainer import RunOptions

    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"run_dir={args.run_dir}")
    cfg = load_config(args.config, overrides)
    validate(cfg, distributed.world_size_from_env())
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
    return cfg, RunOptions(resume=args.resume, stop_at_step=args.stop_at_step,
                           peak_tflops=args.peak_tflops)


def quiet_known_warnings() -> None:
    """Silence warnings PLATFORM.md lists as harmless, so real problems stand out."""
    warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed")
    warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.* is deprecated")


def main(argv: list[str] | None = None) -> None:
    """Validate, train, and exit the process (never returns)."""
    from pretrain.config import ConfigError

    quiet_known_warnings()

    try:
        cfg, options = prepare(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        os._exit(distributed.EXIT_CONFIG)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from deepspeed.utils import logger as ds_logger

    from pretrain.trainer import run

    ds_logger.setLevel(logging.WARNING)
    try:
        code = run(cfg, options)
    except checkpoint.ResumeError as err:  # every rank reaches the same verdict
        if distributed.rank() == 0:
            print(f"error: {err}", file=sys.stderr, flush=True)
        distributed.finish(distributed.EXIT_CONFIG, synchronize=False)
    except Exception:  # noqa: BLE001 — report, then leave without waiting for other ranks
        traceback.print_exc()
        distributed.finish(distributed.EXIT_FAILED, synchronize=False)
    distributed.finish(code)


if __name__ == "__main__":
    main()
