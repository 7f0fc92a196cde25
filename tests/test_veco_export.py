"""pretrain.veco_export: the plug-out, plug-in and seq2seq Hugging Face exports of a tiny VECO
network. The plug-out and plug-in folders are loaded in a clean subprocess (our packages blocked
from import, HF_HUB_OFFLINE=1, an empty HF_HOME, cwd outside the repository) and compared with the
network's own outputs; the seq2seq export is compared with the S-stream it is built from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import EncoderDecoderModel, XLMRobertaForMaskedLM

from dist_utils import BLOCK_OUR_PACKAGES
from pretrain import hf_veco, veco_export
from pretrain.hf_veco import VecoConfig, VecoForMaskedLM

pytestmark = pytest.mark.timeout(180)

LAYERS, HIDDEN, VOCAB, PAD = 3, 32, 100, 1

# Runs with pretrain / finetune / data_prep / kernels unimportable: loads the two folders with
# stock classes only and prints the largest differences to the saved expectations as JSON.
CLEAN_LOAD = BLOCK_OUR_PACKAGES + r"""
import torch
from transformers import AutoModelForMaskedLM, XLMRobertaForMaskedLM, XLMRobertaModel
spec = json.loads(sys.argv[1])
e = torch.load(spec["expected"])
report = {}
def diff(a, b):
    return float((a - b).abs().max()) if a.shape == b.shape else float("inf")
with torch.no_grad():
    mlm, info = XLMRobertaForMaskedLM.from_pretrained(spec["plug_out"], output_loading_info=True)
    encoder = XLMRobertaModel.from_pretrained(spec["plug_out"], add_pooling_layer=False)
    report["plug_out"] = {
        "class": type(mlm).__name__,
        "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
        "tied": mlm.lm_head.decoder.weight is mlm.roberta.embeddings.word_embeddings.weight,
        "logits": diff(mlm.eval()(input_ids=e["x"], attention_mask=e["mx"]).logits, e["plug_out_logits"]),
        "hidden": diff(encoder.eval()(input_ids=e["x"], attention_mask=e["mx"]).last_hidden_state, e["hidden"]),
    }
    plug_in, info = AutoModelForMaskedLM.from_pretrained(spec["plug_in"], trust_remote_code=True,
                                                         output_loading_info=True)
    plug_in.eval()
    remote = sys.modules[type(plug_in).__module__]
    out = plug_in(input_ids=e["x"], attention_mask=e["mx"], partner_input_ids=e["y"],
                  partner_attention_mask=e["my"])
    report["plug_in"] = {
        "class": f"{type(plug_in).__module__}.{type(plug_in).__name__}",
        "cross_attention_op": remote.cross_attention.__name__,
        "missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
        "logits": diff(out.logits, e["plug_in_logits"]),
        "plug_out_logits": diff(plug_in(input_ids=e["x"], attention_mask=e["mx"]).logits,
                                e["plug_out_logits"]),
    }
report["our_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in OURS)
print(json.dumps(report))
"""


def batch(seed: int, size: int, length: int, pad_rows: dict[int, int]):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (size, length), generator=gen)
    ids[:, 0] = 0
    mask = torch.ones(size, length, dtype=torch.long)
    for row, start in pad_rows.items():
        ids[row, start - 1] = 2
        ids[row, start:] = PAD
        mask[row, start:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    config = VecoConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=40,
                        pad_token_id=PAD, bos_token_id=0, eos_token_id=2)
    net = VecoForMaskedLM(config).eval()
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():  # biases and LayerNorms away from their init, so every copy matters
        for param in net.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return net


@pytest.fixture(scope="module")
def pair():
    x, mx = batch(1, 2, 9, {1: 6})
    y, my = batch(2, 2, 7, {0: 5})
    return x, mx, y, my


@pytest.fixture(scope="module")
def clean_load(net, pair, tmp_path_factory):
    """Save plug-out and plug-in, record the net's outputs, load both in a clean process."""
    x, mx, y, my = pair
    tmp = tmp_path_factory.mktemp("veco_export")
    folders = {"plug_out": tmp / "plug-out", "plug_in": tmp / "plug-in"}
    veco_export.plug_out_model(net).save_pretrained(folders["plug_out"])
    veco_export.plug_in_model(net).save_pretrained(folders["plug_in"])
    with torch.no_grad():
        expected = {"x": x, "mx": mx, "y": y, "my": my, "hidden": net.h_stream(x, mx),
                    "plug_out_logits": net(x, mx).logits,
                    "plug_in_logits": net(x, mx, partner_input_ids=y,
                                          partner_attention_mask=my).logits}
    torch.save(expected, tmp / "expected.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp / "hf_home"))
    spec = {**{k: str(v) for k, v in folders.items()}, "expected": str(tmp / "expected.pt")}
    proc = subprocess.run([sys.executable, "-c", CLEAN_LOAD, json.dumps(spec)], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return folders, json.loads(proc.stdout.strip().splitlines()[-1]), expected


def test_plug_out_folder_is_stock_xlm_roberta(clean_load):
    folders, report, _ = clean_load
    config = json.loads((folders["plug_out"] / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta" and "auto_map" not in config
    assert config["architectures"] == ["XLMRobertaForMaskedLM"]
    weights = load_file(folders["plug_out"] / "model.safetensors")
    assert weights and not any("cross_attention" in k for k in weights)
    assert not (folders["plug_out"] / "hf_veco.py").exists()
    r = report["plug_out"]
    assert r["class"] == "XLMRobertaForMaskedLM" and r["tied"]
    assert r["missing"] == [] and r["unexpected"] == []
    assert r["hidden"] < 1e-5 and r["logits"] < 1e-5
    assert report["our_modules"] == []


def test_plug_in_folder_loads_with_remote_code(clean_load):
    folders, report, expected = clean_load
    folder = folders["plug_in"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == hf_veco.MODEL_TYPE
    assert config["auto_map"] == {"AutoConfig": "hf_veco.VecoConfig",
                                  "AutoModelForMaskedLM": "hf_veco.VecoForMaskedLM"}
    assert (folder / "hf_veco.py").read_bytes() == open(hf_veco.__file__, "rb").read()
    assert any(k.startswith("cross_attention.2.self.key") for k in load_file(folder / "model.safetensors"))
    r = report["plug_in"]
    assert r["class"].startswith("transformers_modules.") and r["class"].endswith(".VecoForMaskedLM")
    assert r["cross_attention_op"] == "_sdpa_cross_attention"  # the kernel-less fallback ran
    assert r["missing"] == [] and r["unexpected"] == []
    assert r["logits"] < 1e-5 and r["plug_out_logits"] < 1e-5
    # the check has teeth: plug-in and plug-out logits differ by 100x the tolerance
    assert (expected["plug_in_logits"] - expected["plug_out_logits"]).abs().max() > 1e-3
    assert report["our_modules"] == []


def test_plug_in_model_is_an_independent_copy(net):
    copy = veco_export.plug_in_model(net)
    assert type(copy) is VecoForMaskedLM and copy is not net
    assert copy.lm_head.decoder.weight is copy.roberta.embeddings.word_embeddings.weight
    for (name, a), b in zip(net.state_dict().items(), copy.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), name


def _seq2seq_reference(net, x, mx, y, my, layers):
    with torch.no_grad():
        memory = net.h_stream(x, mx)
        return net.lm_head(net.s_stream(y, my, memory, mx, layers=layers, causal=True))


@pytest.mark.parametrize("decoder_layers", [2, LAYERS])
def test_seq2seq_equals_causal_s_stream_of_the_last_layers(net, pair, tmp_path, decoder_layers):
    x, mx, y, my = pair
    model = veco_export.seq2seq_model(net, decoder_layers=decoder_layers)
    assert type(model) is EncoderDecoderModel
    assert len(model.encoder.encoder.layer) == LAYERS
    assert len(model.decoder.roberta.encoder.layer) == decoder_layers
    decoder_embeddings = model.decoder.roberta.embeddings.word_embeddings.weight
    encoder_embeddings = model.encoder.embeddings.word_embeddings.weight
    assert model.decoder.lm_head.decoder.weight is decoder_embeddings
    assert torch.equal(decoder_embeddings, encoder_embeddings)
    assert decoder_embeddings.data_ptr() != encoder_embeddings.data_ptr()  # equal copies
    for name in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        assert getattr(model.config, name) == getattr(model.generation_config, name) is not None
    assert model.config.decoder_start_token_id == net.config.bos_token_id
    assert model.config.vocab_size == VOCAB

    kwargs = dict(input_ids=x, attention_mask=mx, decoder_input_ids=y, decoder_attention_mask=my)
    with torch.no_grad():
        logits = model(**kwargs).logits
    last = range(LAYERS - decoder_layers, LAYERS)
    torch.testing.assert_close(logits, _seq2seq_reference(net, x, mx, y, my, last),
                               atol=1e-5, rtol=0)
    if decoder_layers < LAYERS:  # the parity tells the layer choice apart
        first = _seq2seq_reference(net, x, mx, y, my, range(decoder_layers))
        assert (logits - first).abs().max() > 1e-2

    model.save_pretrained(tmp_path)
    loaded, info = EncoderDecoderModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**kwargs).logits, logits, atol=1e-6, rtol=0)
        generated = loaded.generate(input_ids=x, attention_mask=mx, max_new_tokens=5, num_beams=1)
    assert generated.dtype == torch.long and generated.shape[0] == 2
    assert 2 <= generated.shape[1] <= 6 and (generated[:, 0] == net.config.bos_token_id).all()


def test_seq2seq_rejects_more_decoder_layers_than_pretrained(net):
    with pytest.raises(ValueError, match=f"{LAYERS} pretrained layers"):
        veco_export.seq2seq_model(net, decoder_layers=LAYERS + 1)
    with pytest.raises(ValueError):
        veco_export.seq2seq_model(net, decoder_layers=0)


def test_export_model_dispatch(net):
    assert veco_export.FORMS == ("plug-out", "plug-in", "seq2seq")
    assert type(veco_export.export_model(net, "plug-out")) is XLMRobertaForMaskedLM
    assert type(veco_export.export_model(net, "plug-in")) is VecoForMaskedLM
    assert len(veco_export.export_model(net, "seq2seq", 1).decoder.roberta.encoder.layer) == 1
    with pytest.raises(ValueError, match="plug-out"):
        veco_export.export_model(net, "plug-sideways")
