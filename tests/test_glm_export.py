"""pretrain.glm_export: the HF folder of a tiny mGLM training module. The folder is loaded in a
clean subprocess (our packages blocked from import, offline, empty HF_HOME, cwd outside the
repository) with trust_remote_code and, in this process, with our registered classes; both give
the training network's logits (and the training loss) on a blank-infilling batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel

from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer
from dist_utils import BLOCK_OUR_PACKAGES
from paths import SHARED_DATA
from pretrain import glm_export, hf_glm
from pretrain.config import MglmConfig, ModelConfig
from pretrain.glm_model import build_model
from pretrain.hf_glm import GlmForBlankInfilling

pytestmark = pytest.mark.timeout(120)

TEXT = SHARED_DATA / "parallel" / "tatoeba.deu-eng.eng"
MODEL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                    max_position_embeddings=48, dropout=0.1)
TRAIN_ATTENTION = "sdpa"  # the export must switch it to "auto"

# Runs with pretrain / finetune / data_prep / kernels unimportable; prints a JSON report.
CLEAN_LOAD = BLOCK_OUR_PACKAGES + r"""
import torch
from transformers import AutoModel, AutoTokenizer
spec = json.loads(sys.argv[1])
e = torch.load(spec["expected"])
model, info = AutoModel.from_pretrained(spec["folder"], trust_remote_code=True,
                                        output_loading_info=True)
# AutoTokenizer reads config.json through AutoConfig (transformers 5), whose auto_map asks
# for trust_remote_code too; without it, it prompts on stdin
tok = AutoTokenizer.from_pretrained(spec["folder"], trust_remote_code=True)
with torch.no_grad():
    logits = model(e["input_ids"], e["position_ids"], sep=e["sep"]).logits
print("REPORT", json.dumps({
    "class": f"{type(model).__module__}.{type(model).__name__}",
    "training": model.training,
    "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
    "logits": float((logits - e["logits"]).abs().max()) if logits.shape == e["logits"].shape
              else float("inf"),
    "attention": model.config.attention,
    "kind": model.attention_kind(logits.device, False),
    "gmask": tok.convert_tokens_to_ids("[gMASK]"), "tokenizer_len": len(tok),
    "our_modules": sorted(m for m in sys.modules if m.split(".")[0] in OURS),
}))
"""


@pytest.fixture(scope="module")
def glm_tok(tmp_path_factory):
    folder = train_tokenizer([TEXT], 400, tmp_path_factory.mktemp("glmtok"), layout="glm")
    tok = load_tokenizer(folder)
    return tok, tokenizer_info(tok)


@pytest.fixture(scope="module")
def training(glm_tok):
    """The training module of a tiny run, its weights moved away from their init (biases and
    LayerNorms included) so that every copied tensor matters."""
    torch.manual_seed(0)
    model = build_model(MODEL, MglmConfig(attention=TRAIN_ATTENTION), glm_tok[1])
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return model.eval()


def blank_sample(tok, info: dict, text: str, answer: str):
    """One [MASK]-mode sample as glm_blank lays it out (spec A1.5-A1.7): Part A = [CLS] text
    [eos] with the blank as [MASK]; Part B = [sop] answer, targets answer [eop]; position of every
    Part-B token = the mask's position, block positions 1..k."""
    part_a = [info["cls_id"], *tok(text, add_special_tokens=False).input_ids, info["eos_id"]]
    answer_ids = tok(answer, add_special_tokens=False).input_ids
    mask_at = part_a.index(info["mask_id"])
    inputs = part_a + [info["sop_id"], *answer_ids]
    labels = [info["pad_id"]] * len(part_a) + [*answer_ids, info["eop_id"]]
    k = len(answer_ids) + 1
    positions = [list(range(len(part_a))) + [mask_at] * k, [0] * len(part_a) + list(range(1, k + 1))]
    return inputs, labels, positions, len(part_a)


def blank_batch(tok, info: dict) -> dict[str, torch.Tensor]:
    samples = [blank_sample(tok, info, "Tom is [MASK] today.", "very happy"),
               blank_sample(tok, info, "I [MASK] it.", "saw")]
    width = max(len(s[0]) for s in samples)
    batch = {"input_ids": [], "labels": [], "loss_mask": [], "position_ids": [], "sep": []}
    for inputs, labels, positions, sep in samples:
        pad = width - len(inputs)  # right padding: pad id, loss 0, positions 0
        batch["input_ids"].append(inputs + [info["pad_id"]] * pad)
        batch["labels"].append(labels + [info["pad_id"]] * pad)
        batch["loss_mask"].append([0.0] * sep + [1.0] * (len(inputs) - sep) + [0.0] * pad)
        batch["position_ids"].append([row + [0] * pad for row in positions])
        batch["sep"].append(sep)
    out = {k: torch.tensor(v) for k, v in batch.items()}
    out["lengths"] = torch.tensor([len(s[0]) for s in samples])
    return out


@pytest.fixture(scope="module")
def exported(training, glm_tok, tmp_path_factory):
    """The folder convert_to_hf writes for the training module's state (DeepSpeed's wrapper
    prefix included), and the training network's outputs on a blank-infilling batch."""
    tok, info = glm_tok
    state = {f"module.{k}": v.clone() for k, v in training.state_dict().items()}
    net = glm_export.network_from_state(MODEL, MglmConfig(attention=TRAIN_ATTENTION), info, state)
    folder = tmp_path_factory.mktemp("glm_export") / "hf"
    net.save_pretrained(folder)
    tok.save_pretrained(folder)
    batch = blank_batch(tok, info)
    with torch.no_grad():
        loss, _ = training(**batch)
        logits = training.net(batch["input_ids"], batch["position_ids"], sep=batch["sep"]).logits
    return folder, batch, logits, loss


def _loss(logits, batch) -> torch.Tensor:
    token = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="none")
    return (token * batch["loss_mask"].flatten()).sum() / batch["loss_mask"].sum()


def test_folder_layout_and_config(exported, training, glm_tok):
    folder, *_ = exported
    _, info = glm_tok
    assert {"model.safetensors", "config.json", "hf_glm.py", "tokenizer.json"} <= \
        {p.name for p in folder.iterdir()}
    assert (folder / "hf_glm.py").read_bytes() == open(hf_glm.__file__, "rb").read()
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == hf_glm.MODEL_TYPE
    assert config["auto_map"] == {"AutoConfig": "hf_glm.GlmConfig",
                                  "AutoModel": "hf_glm.GlmForBlankInfilling"}
    assert config["attention"] == "auto"
    assert training.net.config.attention == TRAIN_ATTENTION  # the training config is untouched
    for name, key in glm_export.CONFIG_TOKEN_IDS.items():
        assert config[name] == info[key], name
    assert config["vocab_size"] == info["padded_vocab_size"] > info["vocab_size"]
    assert (config["hidden_size"], config["num_layers"], config["max_position_embeddings"]) == \
        (MODEL.hidden_size, MODEL.num_layers, MODEL.max_position_embeddings)


def test_saved_weights_equal_the_training_network(exported, training):
    folder, *_ = exported
    saved = load_file(folder / "model.safetensors")
    ours = training.net.state_dict()
    assert set(saved) == set(ours)  # one embedding matrix, no separate output layer
    for name, tensor in ours.items():
        assert torch.equal(saved[name], tensor), name


def test_clean_process_loads_with_remote_code(exported, glm_tok, tmp_path):
    folder, batch, logits, _ = exported
    torch.save({"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
                "sep": batch["sep"], "logits": logits}, tmp_path / "expected.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    spec = {"folder": str(folder), "expected": str(tmp_path / "expected.pt")}
    proc = subprocess.run([sys.executable, "-c", CLEAN_LOAD, json.dumps(spec)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.rsplit("REPORT ", 1)[-1])
    assert report["class"].startswith("transformers_modules.")
    assert report["class"].endswith(".GlmForBlankInfilling")
    assert report["our_modules"] == [] and not report["training"]
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["attention"] == "auto" and report["kind"] == "sdpa"
    assert report["logits"] < 1e-5
    _, info = glm_tok
    assert (report["gmask"], report["tokenizer_len"]) == (info["gmask_id"], info["vocab_size"])


def test_registered_classes_give_the_training_logits_and_loss(exported):
    folder, batch, logits, loss = exported
    hf_glm.register()
    model, info = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert type(model) is GlmForBlankInfilling and not model.training
    assert not info["missing_keys"] and not info["unexpected_keys"]
    with torch.no_grad():
        out = model(batch["input_ids"], batch["position_ids"], sep=batch["sep"]).logits
    torch.testing.assert_close(out, logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(_loss(out, batch), loss, rtol=0, atol=1e-5)
    # the check has teeth: a Part-A token change moves every row's logits by far more
    changed = batch["input_ids"].clone()
    changed[0, 1] = (changed[0, 1] + 1) % 300
    with torch.no_grad():
        moved = model(changed, batch["position_ids"], sep=batch["sep"]).logits
    assert (moved - logits).abs().max() > 1e-3


def test_output_layer_stays_tied_to_the_loaded_embeddings(exported, glm_tok):
    folder, batch, logits, _ = exported
    _, info = glm_tok
    model = GlmForBlankInfilling.from_pretrained(folder)
    unused_row = info["padded_vocab_size"] - 1  # a padding row: never an input id
    assert unused_row not in batch["input_ids"]
    assert logits[..., unused_row].abs().min() > 0
    with torch.no_grad():
        model.get_input_embeddings().weight[unused_row].zero_()
        out = model(batch["input_ids"], batch["position_ids"], sep=batch["sep"]).logits
    assert torch.equal(out[..., unused_row], torch.zeros_like(out[..., unused_row]))
    torch.testing.assert_close(out[..., :unused_row], logits[..., :unused_row], rtol=0, atol=1e-5)


def test_export_model_and_write_folder_copy_the_network(training, glm_tok, tmp_path):
    tok, info = glm_tok
    copy = glm_export.export_model(training.net, info)
    assert copy is not training.net and copy.config.attention == "auto"
    for (name, a), b in zip(training.net.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name
    folder = glm_export.write_folder(training.net, tok, info, tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    assert config["sop_token_id"] == info["sop_id"] and (folder / "hf_glm.py").is_file()
    assert (folder / "tokenizer.json").is_file()


def test_mismatches_are_refused(training, glm_tok):
    _, info = glm_tok
    mglm = MglmConfig(attention=TRAIN_ATTENTION)
    state = training.state_dict()
    with pytest.raises(glm_export.GlmExportError, match="is this an mGLM run"):
        glm_export.network_from_state(MODEL, mglm, info, {"encoder.x": torch.zeros(1), **state})
    smaller = replace(MODEL, max_position_embeddings=32)
    with pytest.raises(glm_export.GlmExportError, match="another shape"):
        glm_export.network_from_state(smaller, mglm, info, state)
    partial = {k: v for k, v in state.items() if "final_layernorm" not in k}
    with pytest.raises(glm_export.GlmExportError, match="missing"):
        glm_export.network_from_state(MODEL, mglm, info, partial)
    xlmr = {k: v for k, v in info.items() if k != "layout"}
    with pytest.raises(glm_export.GlmExportError, match="not a GLM tokenizer"):
        glm_export.network_from_state(MODEL, mglm, xlmr, state)


def test_load_filler_fills_a_blank_from_the_folder(exported):
    from pretrain.generate import GenerationConfig, load_filler

    folder, *_ = exported
    filler = load_filler(folder)
    results = filler.fill(["Tom is [MASK] today."], strategy=GenerationConfig(max_new_tokens=3))
    assert len(results) == 1 and isinstance(results[0]["output"], str)
    assert "[MASK]" not in results[0]["output"] and len(results[0]["blanks"]) == 1
