"""mPMR as Hugging Face classes: `MPMRConfig` and `MPMRForSpanExtraction` (XLM-R encoder + span
extractor), saved by `pretrain.convert_to_hf` and loaded with `AutoModel.from_pretrained`.

SELF-CONTAINED: imports only torch and transformers. `save_pretrained` copies this very file
into every exported folder (`auto_map` → `hf_mpmr.MPMRConfig` / `hf_mpmr.MPMRForSpanExtraction`),
so `AutoModel.from_pretrained(DIR, trust_remote_code=True)` works in a process that has never
seen our packages. Never import `pretrain`, `finetune` or anything outside torch/transformers.

Folder layout (config.json): `model_type` = "xpretrain-mpmr" (ours, so plain XLM-R loading is
never redirected), every `XLMRobertaConfig` field, `extractor_size`, `extractor_dropout`,
`architectures` = ["MPMRForSpanExtraction"] and `auto_map`. Weights: `roberta.*` (the encoder,
the prefix `XLMRobertaModel.base_model_prefix` strips) and `extractor.{0,3}.{weight,bias}`
(the same names as `pretrain.model.MPMRModel.extractor`). Hence:

* `XLMRobertaModel.from_pretrained(DIR)` loads the encoder (transformers warns that the
  model_type differs and that `extractor.*` is unused; pass `add_pooling_layer=False` — mPMR has
  no pooler);
* `AutoModel.from_pretrained(DIR, trust_remote_code=True)` loads the copied file's classes;
* after `import pretrain.hf_mpmr` (which calls `register()`), `AutoModel.from_pretrained(DIR)`
  returns *this* module's `MPMRForSpanExtraction`, with or without `trust_remote_code`
  (transformers prefers explicitly registered local classes over a folder's code).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, XLMRobertaConfig, XLMRobertaModel
from transformers.modeling_outputs import ModelOutput
from transformers.models.xlm_roberta.modeling_xlm_roberta import XLMRobertaPreTrainedModel

MODEL_TYPE = "xpretrain-mpmr"


class MPMRConfig(XLMRobertaConfig):
    """XLM-R config plus the span extractor: FFN = Linear(hidden, extractor_size) → GELU →
    Dropout(extractor_dropout) → Linear(extractor_size, hidden)."""

    model_type = MODEL_TYPE

    extractor_size: int = 1024
    extractor_dropout: float | int = 0.1


@dataclass
class MPMRSpanOutput(ModelOutput):
    """span_logits [B, L, L] (fp32 or wider): Z_ij = query_states_i · last_hidden_state_j;
    query_states [B, L, h] = FFN(H); last_hidden_state [B, L, h] = H; hidden_states /
    attentions as XLM-R returns them when asked."""

    span_logits: torch.FloatTensor | None = None
    query_states: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MPMRForSpanExtraction(XLMRobertaPreTrainedModel):
    """XLM-R encoder (`self.roberta`, no pooler) + span extractor (`self.extractor`).

    Z_ij = FFN(H)_i · H_j over all token pairs; the MRC readers (pretraining and fine-tuning)
    mask the cells that are not i ≤ j inside {[CLS]} ∪ context themselves.
    """

    config_class = MPMRConfig
    config: MPMRConfig

    def __init__(self, config: MPMRConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self.extractor = nn.Sequential(
            nn.Linear(hidden, config.extractor_size), nn.GELU(),
            nn.Dropout(config.extractor_dropout), nn.Linear(config.extractor_size, hidden))
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> MPMRSpanOutput:
        """input_ids, attention_mask [B, L] → `MPMRSpanOutput`. Extra keyword arguments
        (token_type_ids, position_ids, inputs_embeds, …) go to the XLM-R encoder."""
        encoded = self.roberta(input_ids=input_ids, attention_mask=attention_mask,
                               output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, return_dict=True, **kwargs)
        keys = encoded.last_hidden_state  # [B, L, h]
        queries = self.extractor(keys)  # [B, L, h]
        dtype = torch.promote_types(queries.dtype, torch.float32)
        logits = torch.bmm(queries.to(dtype), keys.to(dtype).transpose(1, 2))  # [B, L, L]
        return MPMRSpanOutput(span_logits=logits, query_states=queries, last_hidden_state=keys,
                              hidden_states=encoded.hidden_states,
                              attentions=encoded.attentions)


# save_pretrained copies this file and writes `auto_map` for these two Auto classes.
MPMRConfig.register_for_auto_class("AutoConfig")
MPMRForSpanExtraction.register_for_auto_class("AutoModel")


def register() -> None:
    """Map model_type "xpretrain-mpmr" to these classes in `AutoConfig` / `AutoModel` (idempotent).

    Only our own model_type is registered: folders with model_type "xlm-roberta" keep loading as
    plain XLM-R. Called when this file is imported as `pretrain.hf_mpmr`; a copy loaded as a
    folder's remote code does not register itself.
    """
    AutoConfig.register(MODEL_TYPE, MPMRConfig, exist_ok=True)
    AutoModel.register(MPMRConfig, MPMRForSpanExtraction, exist_ok=True)


if __name__ == "pretrain.hf_mpmr":
    register()


__all__ = ["MODEL_TYPE", "MPMRConfig", "MPMRForSpanExtraction", "MPMRSpanOutput", "register"]
