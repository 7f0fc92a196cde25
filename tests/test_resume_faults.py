"""Damaged checkpoints and resumes across shapes, on 2 CPU ranks (torchrun, gloo).

One 2-rank ZeRO-1 run (dropout on, a checkpoint every 2 steps) is shared by the tests, which
damage copies of it: a missing file, a truncated file, a truncated complete.json and 64 flipped
bytes in an optimizer shard make `--resume auto` fall back to the intact checkpoint before them
(one warning per damaged tag) and the run continues bit-identically; an explicit
`--resume PATH` to a damaged tag is one `error:` line and exit 2. ZeRO 1 → 2 on the same ranks
loads directly, bit-identically; an unsupported stage switch is one error line. `save` refuses
NaN/inf weights (ZeRO 0, 2 and 3) without touching `latest`."""

from __future__ import annotations

import json
import shutil

import pytest

from dist_utils import (ROOT, TINY, error_lines, flip_bytes, run, script_command, tiny_args,
                        train_command, train_records, truncate)
from pretrain import checkpoint as ck

pytestmark = pytest.mark.timeout(600)

SETS = ("train.zero_stage=1", "train.train_steps=10", "train.save_every=2", "train.keep_last=5",
        "train.eval_every=0", "train.log_every=1")
OPTIM = "zero_pp_rank_{}_mp_rank_00_optim_states.pt"


@pytest.fixture(scope="module")
def source(tiny_mrc_data, tmp_path_factory):
    """10 steps of ZeRO-1 on 2 ranks, dropout 0.1, checkpoints at steps 2, 4, 6, 8, 10."""
    run_dir = tmp_path_factory.mktemp("faults") / "source"
    run(train_command(2, tiny_args(tiny_mrc_data, run_dir, *SETS)))
    assert [p.name for p in ck.list_checkpoints(run_dir / "checkpoints")] == \
        [ck.tag_for_step(s) for s in (2, 4, 6, 8, 10)]
    return run_dir


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in train_records(run_dir)}


def copy_run(source, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(source, target)
    return target, target / "checkpoints"


def test_auto_resume_skips_damaged_checkpoints(source, tiny_mrc_data, tmp_path):
    run_dir, root = copy_run(source, tmp_path)
    damage = {  # tag → (file, what the warning says)
        10: (OPTIM.format(1), "checksum differs"),
        8: (OPTIM.format(0), "recorded (truncated)"),
        6: ("mp_rank_00_model_states.pt", "missing"),
        4: (ck.COMPLETE, "not valid JSON"),
    }
    flip_bytes(root / "step_000010" / OPTIM.format(1))
    truncate(root / "step_000008" / OPTIM.format(0))
    (root / "step_000006" / "mp_rank_00_model_states.pt").unlink()
    truncate(root / "step_000004" / ck.COMPLETE)
    out = run(train_command(2, tiny_args(tiny_mrc_data, run_dir, *SETS, "train.keep_last=2")))
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 4, out.stderr[-3000:]
    for line, (step, (name, what)) in zip(warnings, damage.items()):
        assert line.startswith(f"warning: checkpoint {ck.tag_for_step(step)} is damaged ({name}: ")
        assert what in line and line.endswith("); resuming from step_000002"), line
    assert f"resuming from {root / 'step_000002'} (step 2" in out.stdout
    assert losses(run_dir) == losses(source)  # steps 3-10 again, bit-identical
    # Each save replaced the damaged tag of its step; keep_last=2 of the intact ones remain.
    assert [p.name for p in ck.list_checkpoints(root, complete_only=False)] == \
        ["step_000008", "step_000010"]
    assert (root / ck.LATEST).read_text() == "step_000010"
    assert all(ck.verify(p) == [] for p in ck.list_checkpoints(root))


def test_explicit_resume_of_a_damaged_checkpoint_is_refused(source, tiny_mrc_data, tmp_path):
    """Sizes are checked before any worker starts; checksums by the ranks, collectively."""
    run_dir, root = copy_run(source, tmp_path)
    truncate(root / "step_000008" / OPTIM.format(1))
    flip_bytes(root / "step_000010" / OPTIM.format(0))
    for tag, what in (("step_000008", f"{OPTIM.format(1)}: "),
                      ("step_000010", f"{OPTIM.format(0)}: checksum differs")):
        out = run(train_command(0, tiny_args(tiny_mrc_data, tmp_path / "new", *SETS) +
                                ["--resume", str(root / tag)]), check=False)
        assert out.returncode == 2, out.stderr[-3000:]
        [error] = error_lines(out.stderr)
        assert f"{tag} is damaged ({what}" in error and "--resume auto skips" in error, error
        assert "Traceback" not in out.stderr


def test_zero1_to_zero2_resume_is_bit_identical(source, tiny_mrc_data, tmp_path):
    """Stages 1 and 2 write the same files: the same ranks load them directly (no universal
    checkpoint) with the saved RNG states, so dropout masks and losses match to the bit."""
    tag = source / "checkpoints" / "step_000006"
    out = run(train_command(2, tiny_args(tiny_mrc_data, tmp_path, *SETS, "train.zero_stage=2") +
                            ["--resume", str(tag)]))
    assert "train.zero_stage: 1 -> 2" in out.stdout
    assert not (tag / ck.UNIVERSAL).exists()
    resumed = losses(tmp_path)
    assert sorted(resumed) == [7, 8, 9, 10]
    assert resumed == {step: loss for step, loss in losses(source).items() if step > 6}


def test_unsupported_stage_switch_is_one_error_line(source, tiny_mrc_data, tmp_path):
    out = run(train_command(0, tiny_args(tiny_mrc_data, tmp_path, *SETS, "train.zero_stage=3") +
                            ["--resume", str(source / "checkpoints" / "step_000010")]),
              check=False)
    assert out.returncode == 2, out.stderr[-3000:]
    [error] = error_lines(out.stderr)
    assert "saved with ZeRO stage 1 and cannot be resumed with ZeRO stage 3" in error
    assert error.endswith("use --set train.zero_stage=1")


# Two ranks: save once, poison two weights (ZeRO 0/2: every rank's full copy; ZeRO-3: rank 1's
# partition only), save again: every rank must raise NonFiniteWeights.
SAVE_NONFINITE = r"""
import json, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["root"])
import deepspeed, torch
from pretrain import checkpoint, distributed
from pretrain.config import deepspeed_config, load_config
from pretrain.data import data_info
from pretrain.model import build_model, param_groups
distributed.init()
rank, world = distributed.rank(), distributed.world_size()
report = {}
for stage in spec["stages"]:
    run_dir = f"{spec['base']}/zero{stage}"
    cfg = load_config(spec["config"], spec["sets"] + [f"run_dir={run_dir}",
                                                      f"train.zero_stage={stage}"])
    info = data_info(cfg)
    checkpoint.seed_everything(cfg.train.seed)
    model = build_model(cfg.model, info.tokenizer)
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=cfg.optim.lr)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                      config=deepspeed_config(cfg, world))
    state = checkpoint.ClientState(step=1, consumed_samples=8, world_size=world,
                                   zero_stage=stage, data_hash=info.manifest_hash)
    checkpoint.save(engine, run_dir, state, keep_last=2)
    name, param = list(engine.module.named_parameters())[3]
    with torch.no_grad():
        if stage == 3:
            if rank == 1:
                param.ds_tensor.view(-1)[:2] = float("nan")
        else:
            param.view(-1)[:2] = float("inf")
    try:
        checkpoint.save(engine, run_dir, checkpoint.ClientState(**{**state.to_dict(), "step": 2}),
                        keep_last=2)
        outcome = "saved"
    except checkpoint.NonFiniteWeights as err:
        outcome = str(err)
    report[stage] = {"name": name, "outcomes": [None] * world}
    torch.distributed.all_gather_object(report[stage]["outcomes"], outcome)
if rank == 0:
    print("REPORT " + json.dumps(report), flush=True)
distributed.finish(0)
"""


def test_save_refuses_nonfinite_weights(tiny_mrc_data, tmp_path):
    script = tmp_path / "save_nonfinite.py"
    script.write_text(SAVE_NONFINITE)
    spec = {"root": str(ROOT), "base": str(tmp_path), "config": str(TINY), "stages": [0, 2, 3],
            "sets": [f"data.paths=[{tiny_mrc_data}]", "data.num_workers=0"]}
    out = run(script_command(2, script, json.dumps(spec)))
    [line] = [line for line in out.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line[len("REPORT "):])
    for stage in ("0", "2", "3"):
        name, outcomes = report[stage]["name"], report[stage]["outcomes"]
        assert outcomes[0] == outcomes[1] == (
            f"the weights of step 2 hold 2 non-finite values (e.g. in {name}); checkpoint not "
            f"saved, `latest` is unchanged"), (stage, outcomes)
        root = tmp_path / f"zero{stage}" / "checkpoints"
        assert (root / ck.LATEST).read_text() == "step_000001"
        assert ck.verify(root / "step_000001") == [] and not (root / "step_000002").exists()
