"""mGLM's Hugging Face export: the `pretrain.hf_glm.GlmForBlankInfilling` of a run, rebuilt from
the consolidated state of the training module (`pretrain.glm_model.GlmPretrainingModel`, keys
`net.<hf name>`) and configured for use outside training.

The exported config differs from the training one in two ways only:
  * `attention = "auto"` (FlexAttention on CUDA, SDPA elsewhere), whatever the run trained with,
    so a folder trained with "flex" still runs on a CPU and one trained with "dense" is not slow;
  * the GLM command-token ids of the run's tokenizer (`CONFIG_TOKEN_IDS`, spec mGLM.md A2.2)
    are stored as `pad_token_id`, `eos_token_id`, `cls_token_id`, `mask_token_id`,
    `smask_token_id`, `gmask_token_id`, `sop_token_id`, `eop_token_id`, so generation
    (`pretrain.generate`) can check that model and tokenizer belong together.

`save_pretrained` of the returned model writes `config.json` (with `auto_map` → `hf_glm.py`),
`model.safetensors` and a verbatim copy of `pretrain/hf_glm.py` (torch + transformers only), so
`AutoModel.from_pretrained(DIR, trust_remote_code=True)` loads the folder in a process that
never imported xpretrain. The output projection is the word-embedding matrix itself (hf_glm
computes logits with `word_embeddings.weight`), so there is no second tensor to tie or untie.

This module never modifies the network or state it is given (exports are fresh copies) and
never touches checkpoints: `pretrain.convert_to_hf` consolidates them first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pretrain.glm_model import network_config
from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

#: exported config attribute → key of the tokenizer block (data_prep.tokenizer, layout "glm")
CONFIG_TOKEN_IDS = {"pad_token_id": "pad_id", "eos_token_id": "eos_id", "cls_token_id": "cls_id",
                    "mask_token_id": "mask_id", "smask_token_id": "smask_id",
                    "gmask_token_id": "gmask_id", "sop_token_id": "sop_id",
                    "eop_token_id": "eop_id"}
EXPORT_ATTENTION = "auto"
#: the training module holds the network as `.net`
NETWORK_PREFIX = "net."
#: prefixes wrappers put in front of parameter names (DDP/DeepSpeed, torch.compile)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: config entries that describe a saved folder, not the architecture
_FOLDER_KEYS = ("model_type", "architectures", "auto_map", "transformers_version", "dtype",
                "torch_dtype", "_name_or_path")


class GlmExportError(ValueError):
    """State, config and tokenizer do not fit together; the message says what is wrong."""


def _check_tokenizer(tokenizer: dict) -> None:
    missing = [key for key in ("padded_vocab_size", "vocab_size", *CONFIG_TOKEN_IDS.values())
               if key not in tokenizer]
    if tokenizer.get("layout") != "glm" or missing:
        raise GlmExportError(
            f"tokenizer {tokenizer.get('name_or_path', '?')} is not a GLM tokenizer (layout "
            f"{tokenizer.get('layout', 'xlmr')!r}, missing {missing}); mGLM runs need one "
            f"from `python -m data_prep train-tokenizer --layout glm`")


def export_config(config: GlmConfig, tokenizer: dict) -> GlmConfig:
    """A new `GlmConfig` = the architecture of `config` + attention "auto" + the tokenizer's
    command-token ids (`CONFIG_TOKEN_IDS`). Refuses a tokenizer with more ids than embeddings."""
    _check_tokenizer(tokenizer)
    if int(tokenizer["vocab_size"]) > config.vocab_size:
        raise GlmExportError(f"tokenizer has {tokenizer['vocab_size']} ids but the model only "
                             f"{config.vocab_size} embeddings")
    fields = {k: v for k, v in config.to_dict().items() if k not in _FOLDER_KEYS}
    fields.update({name: int(tokenizer[key]) for name, key in CONFIG_TOKEN_IDS.items()})
    fields["attention"] = EXPORT_ATTENTION
    return GlmConfig.from_dict(fields)


def run_network_config(model_cfg, mglm_cfg, tokenizer: dict) -> GlmConfig:
    """The network config `pretrain.glm_model.build_model` trained: `network_config` for
    `init_from: tiny`, else the config.json of the exported GLM folder it started from."""
    if model_cfg.init_from == "tiny":
        return network_config(model_cfg, mglm_cfg, tokenizer)
    try:
        config = GlmConfig.from_pretrained(model_cfg.init_from, local_files_only=True)
    except (OSError, ValueError) as err:
        raise GlmExportError(f"the run started from model.init_from={model_cfg.init_from}, whose "
                             f"config.json is needed to rebuild the network: {err}") from None
    config.attention = mglm_cfg.attention
    return config


def network_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Training-module state (`GlmPretrainingModel.state_dict()` or DeepSpeed's consolidated
    one, optionally behind wrapper prefixes) → `GlmForBlankInfilling` names (`net.` dropped)."""
    out: dict[str, Tensor] = {}
    for name, tensor in state.items():
        stripped = name
        while stripped.startswith(WRAPPER_PREFIXES):
            stripped = stripped.split(".", 1)[1]
        if not stripped.startswith(NETWORK_PREFIX):
            raise GlmExportError(f"checkpoint holds parameter {name!r}, which is not part of a "
                                 f"GLM network (expected {NETWORK_PREFIX}…); is this an mGLM run?")
        new = stripped[len(NETWORK_PREFIX):]
        if new in out:
            raise GlmExportError(f"two checkpoint entries map to {new!r}")
        out[new] = tensor
    return out


def _load(model: GlmForBlankInfilling, state: dict[str, Tensor]) -> GlmForBlankInfilling:
    """model ← state, every tensor accounted for (`convert_to_hf.load_into`), then eval mode."""
    from pretrain.convert_to_hf import ConversionError, load_into

    try:
        load_into(model, state)
    except ConversionError as err:
        raise GlmExportError(str(err)) from None
    return model.eval()


def network_from_state(model_cfg, mglm_cfg, tokenizer: dict,
                       state: dict[str, Tensor]) -> GlmForBlankInfilling:
    """The exported network of a run (fp32, CPU, eval mode) from the consolidated state of its
    training module; `model_cfg` / `mglm_cfg` = the run's `cfg.model` / `cfg.mglm`, `tokenizer`
    = its manifest tokenizer block. Raises `GlmExportError` when they do not fit together."""
    config = export_config(run_network_config(model_cfg, mglm_cfg, tokenizer), tokenizer)
    return _load(GlmForBlankInfilling(config), network_state(state))


def export_model(net: GlmForBlankInfilling, tokenizer: dict) -> GlmForBlankInfilling:
    """An export copy of an in-memory network (e.g. `training_model.net`), on its device and in
    its dtype, eval mode; `net` itself is left as it is."""
    param = next(net.parameters())
    model = GlmForBlankInfilling(export_config(net.config, tokenizer))
    return _load(model.to(device=param.device, dtype=param.dtype), net.state_dict())


def write_folder(net: GlmForBlankInfilling, tokenizer, tokenizer_info: dict,
                 out: str | Path) -> Path:
    """Save `export_model(net, tokenizer_info)` and the tokenizer into `out` (no provenance,
    no temp-folder rename: that is `pretrain.convert_to_hf`'s job for checkpoints)."""
    out = Path(out)
    with torch.no_grad():
        export_model(net, tokenizer_info).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


__all__ = ["CONFIG_TOKEN_IDS", "EXPORT_ATTENTION", "GlmExportError", "export_config",
           "export_model", "network_from_state", "network_state", "run_network_config",
           "write_folder"]
