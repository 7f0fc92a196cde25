"""Checkpoint bookkeeping (which tag to resume, pruning, compatibility checks, RNG states) and
SIGTERM on a 2-rank run: a complete checkpoint is left behind and resuming continues from it."""

from __future__ import annotations

import json
import random
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dist_utils import (flip_bytes, run, start, tiny_args, train_command, train_records, truncate,
                        wait_for_step)
from pretrain import checkpoint as ck

pytestmark = pytest.mark.timeout(600)


def make_tag(root, step, complete=True):
    """A tag folder with a few fake DeepSpeed/RNG files and (if `complete`) a format-2
    complete.json recording them."""
    tag = root / ck.tag_for_step(step)
    tag.mkdir(parents=True)
    (tag / "mp_rank_00_model_states.pt").write_bytes(b"x" * 100)
    (tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(bytes(range(256)) * 40)
    (tag / "rng_rank00000.json").write_text("{}")
    if complete:
        commit(tag, state(step).to_dict())
    return tag


def commit(tag, tree):
    """Write complete.json with `tree` + the file table of what `tag` holds now."""
    table = ck.file_table(tag, ck.tag_files(tag))
    (tag / ck.COMPLETE).write_text(json.dumps({**tree, "files": table}))


def state(step=10, **changes):
    base = dict(step=step, consumed_samples=8 * step, world_size=2, zero_stage=2,
                data_hash="d1", data_hashes={"en": "e1", "de": "g1"},
                model_shapes={"w": [4, 4], "b": [4]}, config={"train": {"train_steps": 20}})
    base.update(changes)
    return ck.ClientState(**base)


def test_resume_never_picks_an_interrupted_save(tmp_path):
    root = tmp_path / "checkpoints"
    assert ck.find_resume(tmp_path, "auto") is None
    make_tag(root, 10)
    make_tag(root, 20)
    (root / ck.LATEST).write_text("step_000020")
    make_tag(root, 30, complete=False)  # killed while writing
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    (root / ck.LATEST).write_text("step_000030")  # even if `latest` named it
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    (root / ck.LATEST).unlink()  # crash between complete.json and `latest`
    assert ck.find_resume(tmp_path, "auto") == root / "step_000020"
    assert ck.find_resume(tmp_path, "none") is None
    assert ck.find_resume(tmp_path, str(root / "step_000010")) == root / "step_000010"
    assert ck.find_resume(tmp_path, str(tmp_path)) == root / "step_000020"
    with pytest.raises(ck.ResumeError, match="interrupted"):
        ck.find_resume(tmp_path, str(root / "step_000030"))
    with pytest.raises(ck.ResumeError, match="no such"):
        ck.find_resume(tmp_path, str(tmp_path / "nope"))


def test_prune_keeps_last_k_and_never_latest(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30, 40):
        make_tag(root, step)
    make_tag(root, 15, complete=False)
    make_tag(root, 50, complete=False)  # being written right now by a newer save
    (root / ck.LATEST).write_text("step_000030")
    ck.prune(root, keep_last=2)
    left = sorted(p.name for p in root.glob("step_*"))
    # 40 is newer than latest (its `latest` update is pending): untouched, like 50
    assert left == ["step_000020", "step_000030", "step_000040", "step_000050"]
    (root / ck.LATEST).write_text("step_000040")
    ck.prune(root, keep_last=1)
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000040", "step_000050"]


OPTIM = "zero_pp_rank_0_mp_rank_00_optim_states.pt"


def test_file_table_records_every_file_but_the_commit_marker(tmp_path):
    tag = make_tag(tmp_path, 10)
    (tag / "sub").mkdir()
    (tag / "sub" / "extra.bin").write_bytes(b"abc")
    (tag / ck.UNIVERSAL).mkdir()  # made later, from the tag
    (tag / ck.UNIVERSAL / "x.pt").write_bytes(b"u")
    names = ck.tag_files(tag)
    assert names == ["mp_rank_00_model_states.pt", "rng_rank00000.json", "sub/extra.bin", OPTIM]
    table = ck.file_table(tag, names)
    assert table["sub/extra.bin"] == {"size": 3, "crc32": f"{zlib.crc32(b'abc'):08x}"}
    # Rank r hashes every world-th file: the shares of 3 ranks add up to the whole table.
    shares = [ck.file_table(tag, names, (r, 3)) for r in range(3)]
    assert sorted(len(s) for s in shares) == [1, 1, 2]
    assert {k: v for s in shares for k, v in s.items()} == table
    assert ck.checksum(tag / OPTIM) == ((tag / OPTIM).stat().st_size,
                                        f"{zlib.crc32((tag / OPTIM).read_bytes()):08x}")


def test_verify_names_each_kind_of_damage(tmp_path):
    tag = make_tag(tmp_path, 10)
    assert ck.verify(tag) == []
    (tag / "notes.txt").write_text("not in the table")  # extra files are fine
    assert ck.verify(tag) == []

    flip_bytes(tag / OPTIM)
    assert ck.verify_sizes(tag) == []  # same size: only the checksum sees it
    [problem] = ck.verify(tag)
    assert problem.startswith(f"{OPTIM}: checksum differs (crc32 "), problem
    # The checksum work splits over ranks; together they find it once.
    assert sorted(ck.verify(tag, share=(0, 2)) + ck.verify(tag, share=(1, 2))) == [problem]

    truncate(tag / OPTIM)
    assert ck.verify_sizes(tag) == [f"{OPTIM}: 5120 bytes, 10240 recorded (truncated)"]
    (tag / "rng_rank00000.json").unlink()
    assert ck.verify(tag) == ["rng_rank00000.json: missing",
                              f"{OPTIM}: 5120 bytes, 10240 recorded (truncated)"]
    assert ck.describe(ck.verify(tag)) == "rng_rank00000.json: missing; 1 more problem"

    good = json.loads((tag / ck.COMPLETE).read_text())
    for text, what in [(json.dumps(good)[:50], "not valid JSON"), ("\x00" * 8, "not valid JSON"),
                       ("[1, 2]", "holds a JSON list, not an object"),
                       (json.dumps({"step": 3}), "lacks consumed_samples, world_size"),
                       (json.dumps({**good, "files": {"a": 1}}), "file table is malformed"),
                       (json.dumps({k: v for k, v in good.items() if k != "files"}),
                        "lacks its file table")]:
        (tag / ck.COMPLETE).write_text(text)
        [problem] = ck.verify(tag)
        assert problem.startswith(f"{ck.COMPLETE}: ") and what in problem, (text, problem)
        with pytest.raises(ck.ResumeError, match="is damaged"):
            ck.read_client_state(tag)
    # Format 1 (before file tables): accepted unverified.
    old = {k: v for k, v in good.items() if k != "files"}
    (tag / ck.COMPLETE).write_text(json.dumps({**old, "format_version": 1}))
    assert ck.verify(tag) == [] and ck.read_client_state(tag).format_version == 1
    assert ck.ClientState.from_dict(good).format_version == ck.FORMAT_VERSION == 2


def test_resume_skips_damaged_checkpoints(tmp_path):
    """--resume auto: newest intact tag at or before `latest`, one warning per damaged tag it
    skipped; an explicit damaged tag is refused; nothing intact is an error."""
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        make_tag(root, step)
    (root / ck.LATEST).write_text("step_000030")
    flip_bytes(root / "step_000030" / OPTIM)
    (root / "step_000020" / ck.COMPLETE).write_text('{"step": 20, "consum')  # cut short
    warnings = []
    # Without a process group (train.py's prepare): sizes only, the flipped bytes pass.
    assert ck.find_resume(tmp_path, "auto") == root / "step_000030"
    assert ck.find_resume(tmp_path, "auto", check=ck.verify, warn=warnings.append) == \
        root / "step_000010"
    assert len(warnings) == 2
    assert warnings[0].startswith(f"warning: checkpoint step_000030 is damaged ({OPTIM}: "
                                  f"checksum differs (crc32 ")
    assert warnings[0].endswith("); resuming from step_000010")
    assert warnings[1].startswith(f"warning: checkpoint step_000020 is damaged ("
                                  f"{ck.COMPLETE}: not valid JSON (")
    assert ck.find_resume(tmp_path, str(tmp_path), check=ck.verify) == root / "step_000010"
    with pytest.raises(ck.ResumeError, match=r"step_000030 is damaged .*checksum differs.*"
                                             r"--resume auto skips damaged ones"):
        ck.find_resume(tmp_path, str(root / "step_000030"), check=ck.verify)
    with pytest.raises(ck.ResumeError, match=r"step_000020 is damaged \(complete.json: not valid"):
        ck.find_resume(tmp_path, str(root / "step_000020"))  # prepare()'s cheap check sees it
    (root / "step_000010" / "rng_rank00000.json").unlink()
    with pytest.raises(ck.ResumeError, match=r"no intact checkpoint in .*step_000030 is damaged"
                                             r".*step_000010 is damaged \(rng_rank00000.json: "
                                             r"missing\)"):
        ck.find_resume(tmp_path, "auto", check=ck.verify)
    (root / ck.LATEST).write_text("garbage\n")  # a pointer that names nothing: newest first
    assert ck.candidates(root) == [root / f"step_0000{s}0" for s in (3, 2, 1)]


def test_prune_counts_only_intact_checkpoints(tmp_path):
    """A damaged `latest` never costs the intact checkpoint before it; once a newer intact one
    is `latest`, damaged and surplus older tags go."""
    root = tmp_path / "checkpoints"
    for step in (5, 10, 20):
        make_tag(root, step)
    truncate(root / "step_000005" / OPTIM)
    truncate(root / "step_000020" / OPTIM)
    make_tag(root, 15, complete=False)
    (root / ck.LATEST).write_text("step_000020")
    ck.prune(root, keep_last=1)
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000010", "step_000020"]
    make_tag(root, 30)
    make_tag(root, 40)  # newer than latest: untouched
    (root / ck.LATEST).write_text("step_000030")
    ck.prune(root, keep_last=2)
    assert sorted(p.name for p in root.glob("step_*")) == \
        ["step_000010", "step_000030", "step_000040"]


def test_count_nonfinite():
    named = [("a", torch.ones(3)), ("b", torch.tensor([1.0, float("nan"), float("inf")])),
             ("ids", torch.arange(3)), ("c", torch.full((2,), -float("inf")))]
    assert ck.count_nonfinite(named) == (4, "b")
    assert ck.count_nonfinite(named[:1]) == (0, None)
    # ZeRO-3: 5 elements over 2 ranks = partitions of 3; rank 1's last one is padding.
    padded = torch.tensor([1.0, 2.0, float("nan")])
    assert ck.own_part(padded, 5, 1).tolist() == [1.0, 2.0]
    assert ck.own_part(padded, 5, 0).numel() == 3 and ck.own_part(padded, 2, 1).numel() == 0


def test_compatibility_checks():
    where = Path("ckpt")
    notes = ck.check_compatible(state(), state(world_size=1, config={"train": {
        "train_steps": 40}}), where)
    assert "world size 2 -> 1" in notes and "train.train_steps: 20 -> 40" in notes
    with pytest.raises(ck.ResumeError, match=r"different data .*de"):
        ck.check_compatible(state(), state(data_hash="d2", data_hashes={"en": "e1"}), where)
    with pytest.raises(ck.ResumeError, match=r"another shape .*w: \[4, 4\] -> \[4, 8\]"):
        ck.check_compatible(state(), state(model_shapes={"w": [4, 8], "b": [4]}), where)
    # Stage switches: what DeepSpeed 0.19.8 resumes (measured, see STAGE_SWITCHES).
    for old, new in [(2, 3), (3, 2), (1, 3), (3, 1), (0, 2), (2, 0), (0, 3), (3, 0), (1, 0)]:
        for size in (1, 2):
            with pytest.raises(ck.ResumeError, match=rf"stage {old} and cannot be resumed with "
                                                     rf"ZeRO stage {new} .*zero_stage={old}$"):
                ck.check_compatible(state(zero_stage=old), state(zero_stage=new,
                                                                 world_size=size), where)
    for old, new in [(2, 1), (1, 2), (3, 3), (0, 0)]:
        for size in (1, 2):
            ck.check_compatible(state(zero_stage=old), state(zero_stage=new, world_size=size),
                                where)
    assert not ck.needs_universal(state(), 2, 2)
    assert not ck.needs_universal(state(), 2, 1)  # 2 -> 1 on 2 ranks: same files, direct
    assert ck.needs_universal(state(), 1, 2) and ck.needs_universal(state(), 1, 1)
    assert ck.needs_universal(state(zero_stage=3), 1, 3)
    assert not ck.needs_universal(state(zero_stage=0), 4, 0)


def test_rng_states_round_trip_through_json():
    ck.seed_everything(3)
    saved = json.loads(json.dumps(ck.capture_rng()))
    expected = (random.random(), np.random.rand(), torch.rand(3))
    ck.seed_everything(99)
    ck.restore_rng(saved)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])


def test_client_state_round_trip():
    s = state()
    assert ck.ClientState.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_sigterm_saves_then_resume_continues(tiny_mrc_data, tmp_path):
    """SIGTERM to torchrun mid-run: every rank finishes its step, a complete checkpoint becomes
    `latest`, ranks exit 143. A half-written later checkpoint is ignored by --resume auto, the
    run continues from the signal's step (train_steps may change), and other data is refused."""
    run_dir = tmp_path / "run"
    sets = ("train.train_steps=100000", "train.save_every=0", "train.eval_every=0")
    proc = start(train_command(2, tiny_args(tiny_mrc_data, run_dir, *sets)), tmp_path / "log")
    wait_for_step(run_dir, 3, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    log = (tmp_path / "log").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 143 and not summary["finished"], log[-3000:]
    stopped = summary["step"]
    assert stopped >= 3 and train_records(run_dir)[-1]["step"] == stopped
    root = run_dir / "checkpoints"
    assert (root / ck.LATEST).read_text() == ck.tag_for_step(stopped)
    assert ck.is_complete(root / ck.tag_for_step(stopped))
    assert "got SIGTERM" in log

    make_tag(root, stopped + 1, complete=False)  # a save killed half-way
    make_tag(root, 1, complete=False)
    out = run(train_command(2, tiny_args(tiny_mrc_data, run_dir, "train.save_every=0",
                                         "train.eval_every=0",
                                         f"train.train_steps={stopped + 2}")))
    assert f"resuming from {root / ck.tag_for_step(stopped)}" in out.stdout
    assert f"train.train_steps: 100000 -> {stopped + 2}" in out.stdout
    steps = [r["step"] for r in train_records(run_dir)]
    assert steps == list(range(1, stopped + 3))
    assert (root / ck.LATEST).read_text() == ck.tag_for_step(stopped + 2)
    assert sorted(p.name for p in root.glob("step_*")) == \
        [ck.tag_for_step(stopped), ck.tag_for_step(stopped + 2)]  # keep_last=2, partials gone

    refused = run(train_command(0, tiny_args(tiny_mrc_data / "en", run_dir)), check=False)
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "different data" in errors[0] and "de" in errors[0]
