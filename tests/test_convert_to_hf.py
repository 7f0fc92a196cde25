"""pretrain.convert_to_hf / pretrain.hf_mpmr: real ZeRO-2 and ZeRO-3 checkpoints (tiny mPMR, a
real SentencePiece tokenizer, DeepSpeed on CPU in a subprocess, saved with
`pretrain.checkpoint.save`) → Hugging Face folders → parity with the live training engine.

The clean-process checks run with our packages *blocked* from import, HF_HUB_OFFLINE=1, an empty
HF_HOME and cwd outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import random_examples
from dist_utils import (BLOCK_OUR_PACKAGES, ROOT, cpu_env, error_lines, flip_bytes, free_port,
                        truncate)

pytestmark = pytest.mark.timeout(300)

STAGES = (0, 1, 2, 3)
TRAIN_STEPS = 3

# Runs in a subprocess (DeepSpeed needs a process group): for each ZeRO stage, build the tiny
# model as the trainer does, take TRAIN_STEPS steps, save with `pretrain.checkpoint.save`, and
# record the engine's own outputs on the fixed batch as the expected values.
MAKE_CHECKPOINTS = r"""
import json, os, sys
import numpy as np, torch
spec = json.loads(sys.argv[1])
from pretrain import checkpoint, distributed
from pretrain.config import config_to_dict, deepspeed_config, load_config, save_config
from pretrain.data import data_info, train_batches
from pretrain.model import build_model, param_groups, span_logits
import deepspeed
distributed.init()
ids = torch.from_numpy(np.load(spec["ids"]))
mask = torch.from_numpy(np.load(spec["mask"]))
for stage, run_dir in spec["runs"].items():
    cfg = load_config(spec["config"], spec["sets"] + [f"run_dir={run_dir}",
                                                      f"train.zero_stage={stage}"])
    info = data_info(cfg)
    checkpoint.seed_everything(cfg.train.seed)
    model = build_model(cfg.model, info.tokenizer)
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=cfg.optim.lr)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                      config=deepspeed_config(cfg, 1))
    batches = train_batches(cfg, 0, 1, 0, info)
    for _ in range(cfg.train.train_steps):
        loss, _ = engine(**next(batches), task="loss")
        engine.backward(loss)
        engine.step()
    batches.close()
    state = checkpoint.ClientState(step=cfg.train.train_steps,
                                   consumed_samples=cfg.train.train_steps * 4, world_size=1,
                                   zero_stage=int(stage), data_hash=info.manifest_hash,
                                   model_shapes=shapes, config=config_to_dict(cfg))
    checkpoint.save(engine, run_dir, state, keep_last=2)
    save_config(cfg, os.path.join(run_dir, "config.yaml"))
    engine.eval()
    with torch.no_grad():
        q, k = engine(input_ids=ids, attention_mask=mask)
        np.save(os.path.join(run_dir, "expected_hidden.npy"), k.numpy())
        np.save(os.path.join(run_dir, "expected_logits.npy"), span_logits(q, k).numpy())
print("ok", flush=True)
distributed.finish(0)
"""

# Runs with our packages unimportable: the encoder through plain XLMRobertaModel, the whole
# model through the folder's own code; prints the largest differences as JSON.
CLEAN_LOAD = BLOCK_OUR_PACKAGES + r"""
import numpy as np, torch
from transformers import AutoModel, XLMRobertaModel
spec = json.loads(sys.argv[1])
ids = torch.from_numpy(np.load(spec["ids"]))
mask = torch.from_numpy(np.load(spec["mask"]))
report = {}
for name, item in spec["folders"].items():
    hidden, logits = np.load(item["hidden"]), np.load(item["logits"])
    encoder = XLMRobertaModel.from_pretrained(item["dir"]).eval()  # pooler: new, unused here
    full = AutoModel.from_pretrained(item["dir"], trust_remote_code=True).eval()
    with torch.no_grad():
        h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
        out = full(input_ids=ids, attention_mask=mask)
    report[name] = {
        "encoder_class": type(encoder).__name__,
        "full_class": f"{type(full).__module__}.{type(full).__name__}",
        "hidden": float(np.abs(h - hidden).max()),
        "full_hidden": float(np.abs(out.last_hidden_state.numpy() - hidden).max()),
        "logits": float(np.abs(out.span_logits.numpy() - logits).max()),
        "logits_shape": list(out.span_logits.shape),
    }
report["our_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in OURS)
print(json.dumps(report))
"""


def _train_tokenizer(out: Path, seed: int, vocab_size: int) -> Path:
    """A real XLM-R SentencePiece tokenizer trained on generated pseudo-words (≥ 64 ids)."""
    from data_prep.tokenizer import train_tokenizer

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnoprstuvwyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(2, 8))) for _ in range(300)]
    text = out.parent / f"{out.name}.txt"
    text.write_text("\n".join(" ".join(rng.choice(words, size=12)) for _ in range(400)),
                    encoding="utf-8")
    return train_tokenizer([text], vocab_size, out, seed=0, num_threads=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tokenizer, data, ZeRO-2/3 run dirs with checkpoints and expected outputs, fixed batch."""
    from conftest import write_mrc_folder
    from data_prep.tokenizer import load_tokenizer, tokenizer_info

    base = tmp_path_factory.mktemp("convert")
    tok_dir = _train_tokenizer(base / "tokenizer", seed=0, vocab_size=120)
    tok_info = tokenizer_info(load_tokenizer(tok_dir))
    assert tok_info["vocab_size"] >= 64  # random_examples draws ids below 64
    data = base / "mrc"
    write_mrc_folder(data / "en", "en", random_examples(np.random.default_rng(7), 40), tok_info)

    rng = np.random.default_rng(3)
    ids = rng.integers(4, 63, size=(3, 21)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 0, 2
    ids[1, 12] = 2
    ids[1, 13:] = 1  # padding
    mask = (ids != 1).astype(np.int64)
    np.save(base / "ids.npy", ids)
    np.save(base / "mask.npy", mask)

    runs = {stage: base / f"zero{stage}" for stage in STAGES}
    sets = [f"data.paths=[{data}]", "data.num_workers=0", "train.precision=fp32",
            f"train.train_steps={TRAIN_STEPS}", "train.global_batch_size=4",
            "train.micro_batch_size=4", "optim.warmup_steps=1",
            "optim.min_lr=5.0e-4"]  # lr > 0 from the first step: the weights must move
    spec = {"config": str(ROOT / "configs" / "tiny_mpmr.yaml"), "sets": sets,
            "runs": {str(s): str(p) for s, p in runs.items()},
            "ids": str(base / "ids.npy"), "mask": str(base / "mask.npy")}
    env = cpu_env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT=str(free_port()))
    proc = subprocess.run([sys.executable, "-c", MAKE_CHECKPOINTS, json.dumps(spec)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-4000:]
    return {"base": base, "tokenizer": tok_dir, "tok_info": tok_info, "runs": runs,
            "ids": ids, "mask": mask}


@pytest.fixture(scope="module")
def exported(world):
    """ZeRO 0-2 converted in-process (a bf16 copy of ZeRO-2 too), ZeRO-3 through the command line."""
    from pretrain.convert_to_hf import convert

    outs = {stage: world["base"] / f"hf_zero{stage}" for stage in STAGES}
    for stage in STAGES[:-1]:
        convert(world["runs"][stage], outs[stage])
    convert(world["runs"][2], world["base"] / "hf_zero2_bf16", dtype="bf16")
    proc = subprocess.run([sys.executable, "-m", "pretrain.convert_to_hf", "--checkpoint",
                           str(world["runs"][3]), "--out", str(outs[3])], cwd=ROOT, env=cpu_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"wrote {outs[3]}" in proc.stdout
    return outs


def _expected(world, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
    run = world["runs"][stage]
    return (torch.from_numpy(np.load(run / "expected_hidden.npy")),
            torch.from_numpy(np.load(run / "expected_logits.npy")))


def test_clean_process_parity_encoder_and_remote_code(world, exported, tmp_path):
    """(a) XLMRobertaModel and (b) AutoModel(trust_remote_code) without our packages, offline."""
    spec = {"ids": str(world["base"] / "ids.npy"), "mask": str(world["base"] / "mask.npy"),
            "folders": {f"zero{s}": {"dir": str(exported[s]),
                                     "hidden": str(world["runs"][s] / "expected_hidden.npy"),
                                     "logits": str(world["runs"][s] / "expected_logits.npy")}
                        for s in STAGES}}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"),
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-c", CLEAN_LOAD, json.dumps(spec)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report.pop("our_modules") == []
    for stage in STAGES:
        row = report[f"zero{stage}"]
        assert row["encoder_class"] == "XLMRobertaModel"
        assert row["full_class"].startswith("transformers_modules.")
        assert row["full_class"].endswith("hf_mpmr.MPMRForSpanExtraction")
        assert row["logits_shape"] == list(world["ids"].shape) + [world["ids"].shape[1]]
        assert row["hidden"] <= 1e-5 and row["full_hidden"] <= 1e-5, row
        assert row["logits"] <= 1e-5, row


def test_registered_classes_load_without_trust_remote_code(world, exported):
    """(c) with our package imported, AutoModel.from_pretrained(DIR) gives our class."""
    from transformers import AutoConfig, AutoModel, XLMRobertaConfig

    from pretrain.hf_mpmr import MPMRConfig, MPMRForSpanExtraction

    hidden, logits = _expected(world, 2)
    ids, mask = torch.from_numpy(world["ids"]), torch.from_numpy(world["mask"])
    for kwargs in ({}, {"trust_remote_code": True}):
        model = AutoModel.from_pretrained(exported[2], **kwargs).eval()
        assert type(model) is MPMRForSpanExtraction
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask)
        torch.testing.assert_close(out.span_logits, logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.last_hidden_state, hidden, atol=1e-5, rtol=0)
    assert type(AutoConfig.from_pretrained(exported[3])) is MPMRConfig
    # Registration never hijacks plain XLM-R folders.
    plain = XLMRobertaConfig(vocab_size=70, hidden_size=8, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=16)
    plain.save_pretrained(world["base"] / "plain")
    assert type(AutoConfig.from_pretrained(world["base"] / "plain")) is XLMRobertaConfig


def test_folder_layout_config_and_provenance(world, exported):
    for stage in STAGES:
        out = exported[stage]
        assert {"config.json", "model.safetensors", "hf_mpmr.py", "xpretrain.json",
                "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
        assert (out / "hf_mpmr.py").read_bytes() == (ROOT / "pretrain" / "hf_mpmr.py").read_bytes()
        config = json.loads((out / "config.json").read_text())
        assert config["model_type"] == "xpretrain-mpmr"
        assert config["architectures"] == ["MPMRForSpanExtraction"]
        assert config["auto_map"] == {"AutoConfig": "hf_mpmr.MPMRConfig",
                                      "AutoModel": "hf_mpmr.MPMRForSpanExtraction"}
        assert (config["extractor_size"], config["hidden_size"], config["num_hidden_layers"],
                config["vocab_size"], config["pad_token_id"]) == \
            (64, 32, 2, world["tok_info"]["vocab_size"], 1)
        complete = json.loads((world["runs"][stage] / "checkpoints" / "step_000003" /
                               "complete.json").read_text())
        provenance = json.loads((out / "xpretrain.json").read_text())
        assert provenance["tag"] == "step_000003" and provenance["step"] == TRAIN_STEPS
        assert provenance["zero_stage"] == stage
        assert provenance["data_hash"] == complete["data_hash"]
        assert provenance["run_dir"] == str(world["runs"][stage].resolve())
        assert provenance["tokenizer"]["fingerprint"] == world["tok_info"]["fingerprint"]


def test_bf16_export(world, exported):
    from safetensors.torch import load_file

    bf16 = load_file(world["base"] / "hf_zero2_bf16" / "model.safetensors")
    fp32 = load_file(exported[2] / "model.safetensors")
    assert bf16.keys() == fp32.keys()
    assert all(t.dtype == torch.bfloat16 for t in bf16.values() if t.is_floating_point())
    torch.testing.assert_close(bf16["extractor.0.weight"].float(), fp32["extractor.0.weight"],
                               atol=1e-2, rtol=1e-2)


def test_weights_moved_and_nothing_is_shared(world, exported):
    """(d) the export is the trained model (not its init), and tensors are stored once; mPMR's
    encoder (no LM head) and extractor tie nothing, so there is nothing to re-tie."""
    from safetensors import safe_open

    from pretrain.config import load_config
    from pretrain.hf_mpmr import MPMRForSpanExtraction
    from pretrain.model import build_model

    cfg = load_config(world["runs"][2] / "config.yaml")
    torch.manual_seed(cfg.train.seed)
    initial = build_model(cfg.model, world["tok_info"])
    assert len(list(initial.named_parameters(remove_duplicate=False))) == \
        len(list(initial.named_parameters()))
    model = MPMRForSpanExtraction.from_pretrained(exported[2])
    assert not model.all_tied_weights_keys
    trained = dict(model.named_parameters())
    moved = [name for name, p in initial.named_parameters()
             if not torch.equal(p, trained[name.replace("encoder.", "roberta.", 1)])]
    assert len(moved) > 10
    with safe_open(exported[2] / "model.safetensors", "pt") as handle:
        assert sorted(handle.keys()) == sorted(model.state_dict())


def test_load_into_reties_tied_weights():
    """(d) the re-tie path on a model that ties (XLM-R MLM head ↔ word embeddings): a state dict
    without the tied copy loads, the tie holds, and a save/load round trip keeps it."""
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from pretrain.convert_to_hf import load_into

    cfg = XLMRobertaConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=16)
    source = XLMRobertaForMaskedLM(cfg)
    state = {k: v.clone() + 1 for k, v in source.state_dict().items() if "decoder.weight" not in k
             and v.is_floating_point()}
    target = XLMRobertaForMaskedLM(cfg)
    load_into(target, state)
    embeddings = target.roberta.embeddings.word_embeddings.weight
    assert target.lm_head.decoder.weight is embeddings
    torch.testing.assert_close(embeddings, state["roberta.embeddings.word_embeddings.weight"])


def test_tokenizer_is_the_runs(world, exported):
    """(e) the exported tokenizer equals the run's (fingerprint) and tokenizes identically."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info

    for stage in STAGES:
        tok = load_tokenizer(exported[stage])
        assert tokenizer_info(tok)["fingerprint"] == world["tok_info"]["fingerprint"]
        assert len(tok) == world["tok_info"]["vocab_size"]
        original = load_tokenizer(world["tokenizer"])
        assert tok("abc dezi ta").input_ids == original("abc dezi ta").input_ids


def test_from_training_model_and_name_map(world):
    from pretrain.config import load_config
    from pretrain.convert_to_hf import ConversionError, from_training_model, to_hf_name
    from pretrain.model import build_model, span_logits

    cfg = load_config(world["runs"][3] / "config.yaml")
    model = build_model(cfg.model, world["tok_info"]).eval()
    hf = from_training_model(model)
    ids, mask = torch.from_numpy(world["ids"]), torch.from_numpy(world["mask"])
    with torch.no_grad():
        q, k = model(ids, mask)
        out = hf(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(out.span_logits, span_logits(q, k), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.query_states, q, atol=1e-5, rtol=0)
    assert hf.config.extractor_size == 64 and hf.config.extractor_dropout == 0.1
    assert to_hf_name("module.encoder.encoder.layer.0.output.dense.weight") == \
        "roberta.encoder.layer.0.output.dense.weight"
    assert to_hf_name("extractor.3.bias") == "extractor.3.bias"
    with pytest.raises(ConversionError, match="neither in the encoder"):
        to_hf_name("cross_attention.0.weight")


def _main(argv: list[str], capsys) -> tuple[int, str]:
    from pretrain.convert_to_hf import main

    code = main(argv)
    return code, capsys.readouterr().err


def test_bad_inputs_give_one_line_errors(world, tmp_path, capsys):
    """(f) missing run dir, no checkpoints, unknown / incomplete tag, occupied --out, wrong
    tokenizer: exit 2 with one `error:` line."""
    zero2 = str(world["runs"][2])
    empty = tmp_path / "empty_run"
    (empty / "checkpoints" / "step_000005").mkdir(parents=True)  # a save that never finished
    cases = [
        (["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "o1")],
         "no such directory"),
        (["--checkpoint", str(empty), "--out", str(tmp_path / "o2")],
         "no complete checkpoint"),
        (["--checkpoint", str(empty), "--tag", "step_000005", "--out", str(tmp_path / "o3")],
         "is incomplete"),
        (["--checkpoint", zero2, "--tag", "step_000099", "--out", str(tmp_path / "o4")],
         "complete ones: step_000003"),
        (["--checkpoint", zero2, "--out", str(world["base"] / "hf_zero2")],
         "exists and is not empty"),
    ]
    other = _train_tokenizer(tmp_path / "other_tok", seed=1, vocab_size=90)
    cases.append((["--checkpoint", zero2, "--out", str(tmp_path / "o5"), "--tokenizer",
                   str(other)], "is not the one the run's data was built with"))
    for argv, message in cases:
        code, err = _main(argv, capsys)
        assert code == 2, argv
        assert err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not any(p.name.startswith(".o") for p in tmp_path.iterdir())  # no partial folders


def _copy_run(world, tmp_path, stage: int = 2) -> tuple[Path, Path]:
    run = tmp_path / f"zero{stage}"
    shutil.copytree(world["runs"][stage], run)
    return run, run / "checkpoints"


def test_damaged_checkpoints_are_skipped_or_refused(world, tmp_path, capsys):
    """A damaged `latest` → the newest intact tag, with one warning; a damaged --tag, or no
    intact tag at all → one `error:` line, exit 2; never a traceback."""
    from pretrain.convert_to_hf import PROVENANCE

    run, root = _copy_run(world, tmp_path)
    shutil.copytree(root / "step_000003", root / "step_000004")  # a later save, same bytes
    (root / "latest").write_text("step_000004")
    optim = "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    flip_bytes(root / "step_000004" / optim)
    code, err = _main(["--checkpoint", str(run), "--out", str(tmp_path / "auto")], capsys)
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: checkpoint step_000004 is damaged ({optim}: checksum "
                              f"differs (crc32 ") and warning.endswith("); converting step_000003")
    assert json.loads((tmp_path / "auto" / PROVENANCE).read_text())["tag"] == "step_000003"

    for argv in (["--checkpoint", str(run), "--tag", "step_000004"],
                 ["--checkpoint", str(root / "step_000004")]):
        code, err = _main(argv + ["--out", str(tmp_path / "o1")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"error: --tag step_000004: checkpoint step_000004 is damaged "
                              f"({optim}: checksum differs"), err
    truncate(root / "step_000003" / "mp_rank_00_model_states.pt")
    code, err = _main(["--checkpoint", str(run), "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no intact checkpoint" in err and "step_000003 is damaged (mp_rank_00_model_" in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_nonfinite_weights_are_not_exported(world, tmp_path, capsys):
    """A checkpoint whose fp32 master weights hold NaN (saved before `save` refused them, or
    by another tool) passes verification but is not exported."""
    from pretrain import checkpoint as ck

    run, root = _copy_run(world, tmp_path)
    tag = root / "step_000003"
    shard = tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    states = torch.load(shard, map_location="cpu", weights_only=False)
    with torch.no_grad():
        states["optimizer_state_dict"]["single_partition_of_fp32_groups"][0][:3] = float("nan")
    torch.save(states, shard)
    commit = json.loads((tag / ck.COMPLETE).read_text())
    commit["files"] = ck.file_table(tag, ck.tag_files(tag))  # the NaNs were saved as such
    (tag / ck.COMPLETE).write_text(json.dumps(commit))
    code, err = _main(["--checkpoint", str(run), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    [error] = error_lines(err)
    assert error.startswith(f"error: {tag} holds non-finite weights (3 values, e.g. in "
                            f"encoder.") and error.endswith("); pick an earlier --tag"), error
    assert not (tmp_path / "o").exists()
