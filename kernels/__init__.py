"""Fused kernels for xpretrain, each with a plain PyTorch reference of the same signature.

`kernels.<op>(...)` runs the Triton kernel for CUDA inputs when a Triton GPU driver is active and the
reference otherwise; `XPRETRAIN_KERNELS=reference|triton|auto` (or `set_kernel_mode`) forces a path.
Importing this package never imports Triton (kernels load on first use) and never imports `pretrain`.

* `span_bce_loss`, `span_decode`, `span_cls_logits` (`kernels.span_scores`): mPMR's L x L span scores.
* `cross_attention` (`kernels.cross_attention`): VECO's cross-attention over a stop-gradient source.
  `kernels.cross_attention` is the module and is callable: `kernels.cross_attention(q, k, v, mask)` runs
  the op, `kernels.cross_attention.cross_attention_reference` etc. name the explicit paths.
"""

from kernels import cross_attention  # the module; calling it runs the op (see _CallableModule there)
from kernels._triton_util import kernel_mode, set_kernel_mode
from kernels.span_scores import span_bce_loss, span_cls_logits, span_decode

__all__ = [
    "cross_attention",
    "kernel_mode",
    "set_kernel_mode",
    "span_bce_loss",
    "span_cls_logits",
    "span_decode",
]
