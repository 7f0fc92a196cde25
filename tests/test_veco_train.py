"""VECO on the shared trainer (`objective: veco`): exact resume after a SIGTERM on 2 ranks,
named loss parts and the mono / bilingual alternation, ZeRO 0-3 with fp32 / bf16 / fp16, the
cross-attention-only first stage, and the export of a real checkpoint in all three forms."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch

from dist_utils import (ROOT, config_args, cpu_env, eval_records, fp32_weights, run, start,
                        train_command, train_records, wait_for_step)

pytestmark = pytest.mark.timeout(600)
TINY_VECO = ROOT / "configs" / "tiny_veco.yaml"
STEPS = ("train.train_steps=20", "train.save_every=10", "train.eval_every=10",
         "train.keep_last=2", "train.log_every=1")


def veco_args(data, run_dir, *sets: str) -> list[str]:
    return config_args(TINY_VECO, run_dir, f"data.paths=[{data / 'corpus'}]",
                       f"data.parallel_paths=[{data / 'parallel'}]", *sets)


@pytest.fixture(scope="module")
def veco_runs(tiny_veco_data, tmp_path_factory):
    """(straight, resumed): 20 steps in one go vs a run stopped by SIGTERM after step 8 or so
    (it finishes its step, saves, exits 143) and resumed to step 20; 2 ranks, ZeRO-2."""
    base = tmp_path_factory.mktemp("veco")
    straight, resumed = base / "straight", base / "resumed"
    run(train_command(2, veco_args(tiny_veco_data, straight, *STEPS)))
    # leg 1 through the launch script users run (pretrain.launcher → node launcher → ranks)
    sets = [x for item in STEPS for x in ("--set", item)]
    proc = start(["bash", str(ROOT / "launch_scripts" / "tiny_cpu.sh"), *sets], base / "leg1.log",
                 env=cpu_env(CONFIG=str(TINY_VECO), RUN_DIR=str(resumed),
                             DATA_DIR=str(tiny_veco_data / "corpus"),
                             PARALLEL_DIR=str(tiny_veco_data / "parallel"),
                             XPRETRAIN_STEP_SLEEP_S="0.3"))
    wait_for_step(resumed, 8, proc)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM, (base / "leg1.log").read_text()[-3000:]
    stopped_at = train_records(resumed)[-1]["step"]
    assert 8 <= stopped_at < 20
    second = run(train_command(2, veco_args(tiny_veco_data, resumed, *STEPS)))
    assert f"step_{stopped_at:06d}" in second.stdout and "resuming from" in second.stdout
    return straight, resumed


def test_resume_after_sigterm_gives_identical_losses_and_weights(veco_runs):
    straight, resumed = veco_runs
    a, b = train_records(straight), train_records(resumed)
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 21))
    keys = [k for k in set(a[0]) | set(a[1]) if "loss" in k or "_acc" in k or k == "lr"]
    for ra, rb in zip(a, b):
        assert {k: ra.get(k) for k in keys} == {k: rb.get(k) for k in keys}, ra["step"]
    strip = lambda r: {k: v for k, v in r.items() if k != "eval_batches_per_rank"}  # noqa: E731
    # a stop signal at an eval step skips that evaluation (saved, not evaluated): compare the
    # evaluations both runs made, which must include the last one
    eb = {r['step']: strip(r) for r in eval_records(resumed)}
    ea = {r['step']: strip(r) for r in eval_records(straight)}
    assert 20 in eb and all(ea[k] == eb[k] for k in eb)
    wa, wb = fp32_weights(straight, 20), fp32_weights(resumed, 20)
    assert wa.keys() == wb.keys() and any(".cross_attention." in k for k in wa)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_parts_alternation_and_learning(veco_runs):
    records = train_records(veco_runs[0])
    for r in records:  # odd steps monolingual (CA-MLM), even steps bilingual (CA-MLM + TLM)
        mono = r["step"] % 2 == 1
        assert ("mono/ca_mlm_x_loss" in r) == mono and ("bilingual/tlm_loss" in r) == (not mono)
        for term in ("mlm_x", "mlm_y", "ca_mlm_x", "ca_mlm_y"):
            assert math.isfinite(r[f"{term}_loss"]) and 0 <= r[f"{term}_acc"] <= 1
        total = sum(r[f"{t}_loss"] for t in ("mlm_x", "mlm_y", "ca_mlm_x", "ca_mlm_y", "tlm")
                    if f"{t}_loss" in r)
        assert r["loss"] == pytest.approx(total, rel=0.05)  # Eq. 1 (+ TLM): the plain sum
    assert records[-1]["consumed_samples"] == 20 * 8 and records[-1]["tokens_per_s"] > 0
    for parity in (1, 0):  # each kind learns (bilingual steps carry one more term: TLM)
        losses = [r["loss"] for r in records if r["step"] % 2 == parity]
        assert sum(losses[-2:]) < 0.99 * sum(losses[:2]), losses
    evals = eval_records(veco_runs[0])
    assert [r["step"] for r in evals] == [10, 20]
    assert all(0 <= r["majority_acc"] <= 1 and r["masked_tokens"] > 0 for r in evals)
    assert all(f"{t}_acc" in evals[-1] for t in ("mlm_x", "ca_mlm_x", "tlm"))


@pytest.mark.parametrize("stage, precision", [(3, "bf16"), (0, "fp32"), (1, "bf16")])  # fp16: GPU only (DeepSpeed refuses it on CPU)
def test_zero_stages_and_precisions_with_a_frozen_first_stage(tiny_veco_data, tmp_path, stage,
                                                              precision):
    """One rank, 3 steps, checkpoints after each; steps 1-2 train only the cross-attention."""
    run_dir = tmp_path / "run"
    run(train_command(0, veco_args(
        tiny_veco_data, run_dir, "train.train_steps=3", "train.save_every=1", "train.keep_last=3",
        "train.eval_every=0", f"train.zero_stage={stage}", f"train.precision={precision}",
        "train.global_batch_size=4", "veco.freeze_steps=2", "veco.schedule=alternate")))
    records = train_records(run_dir)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) for r in records), records
    w = {step: fp32_weights(run_dir, step, stage) for step in (1, 2, 3)}
    base = [n for n in w[1] if ".cross_attention." not in n]
    cross = [n for n in w[1] if ".cross_attention." in n]
    assert base and cross
    assert all(torch.equal(w[1][n], w[2][n]) for n in base)  # frozen in step 2
    assert any(not torch.equal(w[1][n], w[2][n]) for n in cross)  # the cross-attention learns
    assert any(not torch.equal(w[2][n], w[3][n]) for n in base)  # joint training from step 3


def test_export_of_a_checkpoint_in_three_forms(veco_runs, tmp_path):
    from transformers import AutoModelForMaskedLM, EncoderDecoderModel, XLMRobertaModel

    from pretrain.convert_to_hf import main

    straight = veco_runs[0]
    assert main(["--checkpoint", str(straight), "--out", str(tmp_path / "hf"), "--form", "all"]) == 0
    weights = fp32_weights(straight, 20)
    encoder = XLMRobertaModel.from_pretrained(tmp_path / "hf" / "plug-out",
                                              add_pooling_layer=False)
    emb = weights["net.roberta.embeddings.word_embeddings.weight"]
    assert torch.equal(encoder.embeddings.word_embeddings.weight, emb)
    plug_in = AutoModelForMaskedLM.from_pretrained(tmp_path / "hf" / "plug-in",
                                                   trust_remote_code=True)
    assert torch.equal(plug_in.cross_attention[0].self.query.weight,
                       weights["net.cross_attention.0.self.query.weight"])
    seq2seq = EncoderDecoderModel.from_pretrained(tmp_path / "hf" / "seq2seq")
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    out = seq2seq.generate(ids, max_new_tokens=4, num_beams=1, do_sample=False)
    assert out.shape[0] == 1 and out.shape[1] >= 2
    assert main(["--checkpoint", str(straight), "--out", str(tmp_path / "x"), "--form",
                 "bogus"]) == 2


def test_the_trainer_names_no_method():
    """DESIGN.md decision 4: the loop, engine, checkpoints and logging know no objective."""
    import re

    source = (ROOT / "pretrain" / "trainer.py").read_text(encoding="utf-8")
    found = re.findall(r"(?i)\b(mpmr|veco|mglm|wae|span\w*|cls_loss|ca_mlm|tlm|languages?)\b",
                       source)
    assert not found, found
    imports = re.findall(r"^\s*from (pretrain\.\w+) import|^\s*import (pretrain\.\w+)", source,
                         re.M)
    assert {a or b for a, b in imports} <= {"pretrain.config", "pretrain.runlock",
                                            "pretrain.objectives"}, imports
