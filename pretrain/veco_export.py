"""VECO's three Hugging Face exports of a trained `pretrain.hf_veco.VecoForMaskedLM` (spec B5).

* **plug-out** (`plug_out_model`): a stock `XLMRobertaForMaskedLM`, config model_type
  "xlm-roberta"; weights `roberta.*` + `lm_head.*` of the network, the cross-attention dropped
  (B5.1: plug-out is architecturally XLM-R). Loads with `XLMRobertaModel` / `…ForSequenceClassification`.
* **plug-in** (`plug_in_model`): a `VecoForMaskedLM` copy whose `save_pretrained` writes
  `hf_veco.py` and `auto_map`; `AutoModelForMaskedLM.from_pretrained(DIR, trust_remote_code=True)`
  loads it in a process without our packages.
* **seq2seq** (`seq2seq_model`): a stock `transformers.EncoderDecoderModel` initialised as B5.2
  says. With L pretrained layers and N decoder layers:
  - encoder = `XLMRobertaModel` with all L layers (self-attention + FFN) and the embeddings;
  - decoder = `XLMRobertaForCausalLM(is_decoder=True, add_cross_attention=True,
    num_hidden_layers=N)`; decoder layer j ← pretrained layer i = L-N+j (the last N layers,
    Table 4): `attention.*`, `intermediate.*`, `output.*` from `roberta.encoder.layer[i]`, and
    `crossattention.self.{query,key,value}` / `crossattention.output.{dense,LayerNorm}` from
    `cross_attention[i]` — mapped by module index, never by renaming strings;
  - decoder lm_head = the pretrained lm_head, its decoder.weight tied to the decoder's own
    word embeddings.

Decisions (the spec leaves them open or stock classes force them):
  - Encoder and decoder embeddings (word, position, token type, LayerNorm) are **equal copies**,
    not one shared tensor: a stock `EncoderDecoderModel` can only share them by tying the whole
    decoder to the encoder (`tie_encoder_decoder`), which would also tie the self-attention.
  - The decoder self-attention is **causal**, as in any decoder; pretraining ran it
    bidirectionally, so fine-tuning adapts it (as the released fairseq recipe does).
  - VECO's fairseq √d embedding scale (`no_scale_embedding` defaulting to False, B5.2,
    UNCONFIRMED intent) is **not** applied: XLM-R, which the embeddings come from, never scales.
  - The encoder carries a **zero** pooler: `EncoderDecoderModel.from_pretrained` rebuilds the
    encoder through `AutoModel.from_config`, which adds one; VECO has no pooler and
    `EncoderDecoderModel` never reads it, so zeros (not random numbers) keep the export
    deterministic and the reload free of "newly initialized" weights.
  - `decoder_start_token_id` = bos (`<s>`), `pad_token_id`, `eos_token_id` (`</s>`) and
    `vocab_size` come from the network's config and are set on the model and its
    generation config, so `generate()` runs.

Every export is a fresh copy in the network's dtype, on its device, in eval mode; the network
is never modified. Not for ZeRO-3-partitioned modules: consolidate first
(`pretrain.convert_to_hf`).
"""

from __future__ import annotations

import torch
import transformers
from torch import nn
from transformers import XLMRobertaConfig, XLMRobertaForCausalLM, XLMRobertaForMaskedLM, \
    XLMRobertaModel

from pretrain.hf_veco import VecoConfig, VecoForMaskedLM

FORMS = ("plug-out", "plug-in", "seq2seq")
#: config entries that describe a saved folder, not the architecture
_FOLDER_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "dtype",
                "torch_dtype", "_name_or_path")


def _fields(config) -> dict:
    fields = config.to_dict()
    for key in _FOLDER_KEYS:
        fields.pop(key, None)
    return fields


def xlmr_config(config, **overrides) -> XLMRobertaConfig:
    """A plain `XLMRobertaConfig` (model_type "xlm-roberta") with the fields of `config`."""
    return XLMRobertaConfig.from_dict({**_fields(config), **overrides})


def _copy(target: nn.Module, source: nn.Module) -> None:
    """target ← source, parameter by parameter (same structure; strict)."""
    target.load_state_dict(source.state_dict(), strict=True)


def _like(model: nn.Module, net: nn.Module) -> nn.Module:
    param = next(net.parameters())
    return model.to(device=param.device, dtype=param.dtype)


def plug_out_model(net: VecoForMaskedLM) -> XLMRobertaForMaskedLM:
    """Stock `XLMRobertaForMaskedLM` with the network's `roberta.*` and `lm_head.*` (cross-
    attention dropped); its forward equals `net(input_ids, attention_mask)`."""
    model = _like(XLMRobertaForMaskedLM(xlmr_config(net.config)), net)
    _copy(model.roberta, net.roberta)
    _copy(model.lm_head, net.lm_head)
    model.tie_weights()
    return model.eval()


def plug_in_model(net: VecoForMaskedLM) -> VecoForMaskedLM:
    """A copy of the network as `pretrain.hf_veco.VecoForMaskedLM` (registered for
    `AutoModelForMaskedLM`): `save_pretrained` writes `hf_veco.py` and `auto_map`."""
    model = _like(VecoForMaskedLM(VecoConfig.from_dict(_fields(net.config))), net)
    missing, unexpected = model.load_state_dict(net.state_dict(), strict=False)
    tied = set(model.all_tied_weights_keys)
    if [k for k in missing if k not in tied] or unexpected:
        raise ValueError(f"the network does not match a VecoForMaskedLM of its own config: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    return model.eval()


def seq2seq_model(net: VecoForMaskedLM, decoder_layers: int = 6) -> transformers.EncoderDecoderModel:
    """Stock `EncoderDecoderModel`: encoder = all L pretrained layers, decoder = the last
    `decoder_layers` (N) layers with `cross_attention[i]` as encoder-decoder attention (see the
    module docstring for the mapping and decisions). N > L or N < 1 is a `ValueError`."""
    total = len(net.roberta.encoder.layer)
    n = int(decoder_layers)
    if not 1 <= n <= total:
        raise ValueError(f"decoder_layers={decoder_layers}: the decoder is built from the last N "
                         f"of the network's {total} pretrained layers, so N must be in 1..{total}")
    cfg = net.config
    special = dict(decoder_start_token_id=cfg.bos_token_id, pad_token_id=cfg.pad_token_id,
                   eos_token_id=cfg.eos_token_id, bos_token_id=cfg.bos_token_id)
    encoder_config = xlmr_config(cfg, is_decoder=False, add_cross_attention=False)
    decoder_config = xlmr_config(cfg, is_decoder=True, add_cross_attention=True,
                                 num_hidden_layers=n)
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(
        encoder_config, decoder_config, vocab_size=cfg.vocab_size, **special)
    model = transformers.EncoderDecoderModel(
        config=config, encoder=XLMRobertaModel(encoder_config, add_pooling_layer=True),
        decoder=XLMRobertaForCausalLM(decoder_config))
    model = _like(model, net)
    # Copy after wrapping, so no initialisation inside EncoderDecoderModel can overwrite weights.
    encoder, decoder = model.encoder, model.decoder
    _copy(encoder.embeddings, net.roberta.embeddings)
    _copy(encoder.encoder, net.roberta.encoder)
    with torch.no_grad():
        for param in encoder.pooler.parameters():
            param.zero_()
    _copy(decoder.roberta.embeddings, net.roberta.embeddings)
    for j, target in enumerate(decoder.roberta.encoder.layer):
        i = total - n + j
        source, cross = net.roberta.encoder.layer[i], net.cross_attention[i]
        _copy(target.attention, source.attention)
        _copy(target.intermediate, source.intermediate)
        _copy(target.output, source.output)
        for name in ("query", "key", "value"):
            _copy(getattr(target.crossattention.self, name), getattr(cross.self, name))
        _copy(target.crossattention.output.dense, cross.output.dense)
        _copy(target.crossattention.output.LayerNorm, cross.output.LayerNorm)
    _copy(decoder.lm_head, net.lm_head)
    decoder.tie_weights()
    for name, value in special.items():
        setattr(model.generation_config, name, value)
    return model.eval()


def export_model(net: VecoForMaskedLM, form: str, decoder_layers: int = 6):
    """The export `form` (one of `FORMS`) of the network; `decoder_layers` is for seq2seq."""
    if form == "plug-out":
        return plug_out_model(net)
    if form == "plug-in":
        return plug_in_model(net)
    if form == "seq2seq":
        return seq2seq_model(net, decoder_layers)
    raise ValueError(f"unknown VECO export form {form!r}; expected one of {', '.join(FORMS)}")


__all__ = ["FORMS", "export_model", "plug_in_model", "plug_out_model", "seq2seq_model",
           "xlmr_config"]
