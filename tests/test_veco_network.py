"""pretrain.hf_veco: the VECO network — H-stream = stock XLM-R, S-stream = self-attn → cross-attn
(through `kernels.cross_attention`) → FFN per layer against a plain-torch reference, memory
padding, the init copy, and the stop-gradient contract. Tiny fp32 configs, fixed seeds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForMaskedLM, XLMRobertaForMaskedLM, XLMRobertaModel

import kernels.cross_attention as kernel_module
from pretrain import hf_veco
from pretrain.hf_veco import MODEL_TYPE, VecoConfig, VecoCrossAttention, VecoForMaskedLM

pytestmark = pytest.mark.timeout(120)

LAYERS, HIDDEN, HEADS, VOCAB, PAD = 3, 32, 2, 100, 1


def tiny_config(**overrides) -> VecoConfig:
    fields = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, intermediate_size=64, max_position_embeddings=40,
                  pad_token_id=PAD, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    fields.update(overrides)
    return VecoConfig(**fields)


def make_net(seed: int = 0, **overrides) -> VecoForMaskedLM:
    torch.manual_seed(seed)
    return VecoForMaskedLM(tiny_config(**overrides)).eval()


def perturbed(net: VecoForMaskedLM, seed: int = 11) -> VecoForMaskedLM:
    """Noise on every parameter, so that biases and LayerNorms are not their init 0 / 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return net


def batch(seed: int, size: int, length: int, pad_rows: dict[int, int]):
    """`<s> … </s>` ids [size, length] and 0/1 mask; row r padded from pad_rows[r] on."""
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
    return perturbed(make_net())


@pytest.fixture(scope="module")
def pair():
    x, mx = batch(1, 2, 9, {1: 6})
    y, my = batch(2, 2, 7, {0: 5})
    return x, mx, y, my


def stock_mlm(net: VecoForMaskedLM) -> XLMRobertaForMaskedLM:
    """XLMRobertaForMaskedLM holding the net's weights (copied by name, cross-attention left out)."""
    config = {k: v for k, v in net.config.to_dict().items() if k not in ("model_type", "architectures")}
    ref = XLMRobertaForMaskedLM(XLMRobertaForMaskedLM.config_class(**config)).eval()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("cross_attention.")}
    ref.load_state_dict(state, strict=True)
    return ref


# ------------------------------------------------------------------ plain-torch reference

def ref_attention(queries, source, w, prefix, heads, keep):
    """softmax(q k^T / √d + mask) v with the q/k/v Linear weights under `prefix`; keep [B, Tq, Tk]."""
    def project(x, name):
        out = F.linear(x, w[f"{prefix}.{name}.weight"], w[f"{prefix}.{name}.bias"])
        return out.view(*x.shape[:2], heads, -1).transpose(1, 2)  # [B, H, T, Dh]

    q, k, v = project(queries, "query"), project(source, "key"), project(source, "value")
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~keep[:, None], float("-inf"))
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(queries.shape)


def ref_post_ln(residual, update, w, prefix, eps):
    """LayerNorm(residual + dense(update)) with dense = `{prefix}.dense`, LN = `{prefix}.LayerNorm`."""
    dense = F.linear(update, w[f"{prefix}.dense.weight"], w[f"{prefix}.dense.bias"])
    return F.layer_norm(residual + dense, (residual.shape[-1],), w[f"{prefix}.LayerNorm.weight"],
                        w[f"{prefix}.LayerNorm.bias"], eps)


def ref_s_stream(net, ids, mask, memory, memory_mask, layers, causal):
    w = {k: v.detach() for k, v in net.state_dict().items()}
    eps, heads = net.config.layer_norm_eps, net.config.num_attention_heads
    emb = "roberta.embeddings"
    positions = torch.cumsum(ids.ne(PAD).long(), 1) * ids.ne(PAD).long() + PAD
    h = (w[f"{emb}.word_embeddings.weight"][ids] + w[f"{emb}.position_embeddings.weight"][positions]
         + w[f"{emb}.token_type_embeddings.weight"][0])
    h = F.layer_norm(h, (h.shape[-1],), w[f"{emb}.LayerNorm.weight"], w[f"{emb}.LayerNorm.bias"], eps)
    length = ids.shape[1]
    self_keep = mask.bool()[:, None, :].expand(-1, length, -1)  # [B, T, T]
    if causal:
        self_keep = self_keep & torch.ones(length, length, dtype=torch.bool).tril()
    cross_keep = memory_mask.bool()[:, None, :].expand(-1, length, -1)  # [B, T, Tk]
    for i in layers:
        p = f"roberta.encoder.layer.{i}"
        a = ref_post_ln(h, ref_attention(h, h, w, f"{p}.attention.self", heads, self_keep), w,
                        f"{p}.attention.output", eps)
        c = ref_post_ln(a, ref_attention(a, memory, w, f"cross_attention.{i}.self", heads,
                                         cross_keep), w, f"cross_attention.{i}.output", eps)
        inner = F.gelu(F.linear(c, w[f"{p}.intermediate.dense.weight"],
                                w[f"{p}.intermediate.dense.bias"]))
        h = ref_post_ln(c, inner, w, f"{p}.output", eps)
    return h


# ------------------------------------------------------------------------------- tests

def test_h_stream_and_plug_out_equal_stock_xlm_roberta(net, pair):
    x, mx, _, _ = pair
    ref = stock_mlm(net)
    encoder = XLMRobertaModel(ref.config, add_pooling_layer=False).eval()
    encoder.load_state_dict(ref.roberta.state_dict())
    labels = torch.where(torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) < 0.3,
                         x, torch.full_like(x, -100))
    with torch.no_grad():
        torch.testing.assert_close(net.h_stream(x, mx),
                                   encoder(input_ids=x, attention_mask=mx).last_hidden_state,
                                   atol=1e-6, rtol=0)
        ours, theirs = net(x, mx, labels=labels), ref(x, attention_mask=mx, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, atol=1e-6, rtol=0)


def test_lm_head_tied_to_word_embeddings():
    net = make_net(seed=5)
    embeddings = net.roberta.embeddings.word_embeddings.weight
    assert net.lm_head.decoder.weight is embeddings
    assert net.lm_head.decoder.bias is net.lm_head.bias
    assert dict(net.all_tied_weights_keys) == {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias"}
    with torch.no_grad():
        embeddings[7].fill_(3.0)  # one storage: the output projection row moves with it
    assert torch.equal(net.get_output_embeddings().weight[7], torch.full((HIDDEN,), 3.0))


def test_cross_attention_initialisation():
    net = make_net(seed=6, initializer_range=0.05)
    assert len(net.cross_attention) == LAYERS
    weights = []
    for block in net.cross_attention:
        for linear in (block.self.query, block.self.key, block.self.value, block.output.dense):
            assert torch.count_nonzero(linear.bias) == 0
            weights.append(linear.weight.detach().flatten())
        assert torch.equal(block.output.LayerNorm.weight, torch.ones(HIDDEN))
        assert torch.equal(block.output.LayerNorm.bias, torch.zeros(HIDDEN))
    every = torch.cat(weights)
    assert abs(every.std().item() - 0.05) < 0.005 and abs(every.mean().item()) < 0.005
    assert not torch.equal(weights[0], weights[4])  # layers drawn independently


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("layers,causal", [(None, False), ((1, 2), True), ((0, 2), False)])
def test_s_stream_matches_reference_through_kernel(net, pair, monkeypatch, attn, layers, causal):
    x, mx, y, my = pair
    assert hf_veco.cross_attention is kernel_module.cross_attention  # in-repo: our op, no fallback
    calls, reference_calls = [], []
    op, kernel_reference = hf_veco.cross_attention, kernel_module.cross_attention_reference

    def spy(q, k, v, key_padding_mask=None, **kw):
        calls.append((tuple(q.shape), tuple(k.shape), key_padding_mask.dtype))
        return op(q, k, v, key_padding_mask, **kw)

    def reference_spy(*args, **kw):
        reference_calls.append(1)
        return kernel_reference(*args, **kw)

    monkeypatch.setattr(hf_veco, "cross_attention", spy)
    monkeypatch.setattr(kernel_module, "cross_attention_reference", reference_spy)
    net.set_attn_implementation(attn)
    try:
        with torch.no_grad():
            memory = net.h_stream(y, my)
            got = net.s_stream(x, mx, memory, my, layers=layers, causal=causal)
    finally:
        net.set_attn_implementation("sdpa")
    used = list(range(LAYERS)) if layers is None else list(layers)
    assert len(calls) == len(used) == len(reference_calls)  # one kernel call per plugged layer
    assert calls[0] == ((2, HEADS, 9, HIDDEN // HEADS), (2, HEADS, 7, HIDDEN // HEADS), torch.bool)
    expected = ref_s_stream(net, x, mx, memory, my, used, causal)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - net.h_stream(x, mx)).abs().max() > 1e-2  # the cross-attention does something


def test_causal_s_stream_ignores_later_tokens(net, pair):
    x, mx, y, my = pair
    x2 = x.clone()
    x2[0, 5:] = (x2[0, 5:] + 1) % (VOCAB - 3) + 3
    with torch.no_grad():
        memory = net.h_stream(y, my)
        causal = [net.s_stream(ids, mx, memory, my, causal=True) for ids in (x, x2)]
        full = [net.s_stream(ids, mx, memory, my) for ids in (x, x2)]
    torch.testing.assert_close(causal[0][0, :5], causal[1][0, :5], atol=1e-6, rtol=0)
    assert (full[0][0, :5] - full[1][0, :5]).abs().max() > 1e-3  # bidirectional does see them


def test_padded_memory_positions_do_not_matter(net, pair):
    x, mx, y, my = pair
    with torch.no_grad():
        memory = net.h_stream(y, my)  # [2, 7, h]; row 0 padded from 5 on
        base = net.s_stream(x, mx, memory, my)
        noisy = memory.clone()
        noisy[0, 5:] = 100 * torch.randn(2, HIDDEN, generator=torch.Generator().manual_seed(4))
        longer = torch.cat([noisy, torch.randn(2, 3, HIDDEN)], 1)  # 3 more padded positions
        longer_mask = torch.cat([my, torch.zeros(2, 3, dtype=my.dtype)], 1)
        torch.testing.assert_close(net.s_stream(x, mx, noisy, my), base, atol=1e-6, rtol=0)
        torch.testing.assert_close(net.s_stream(x, mx, longer, longer_mask.bool()), base,
                                   atol=1e-6, rtol=0)
        unmasked = net.s_stream(x, mx, noisy, torch.ones_like(my))
        assert (unmasked[0] - base[0]).abs().max() > 1e-3  # negative control: the mask is used
        empty = net.s_stream(x, mx, memory, torch.zeros_like(my))  # no key at all: finite
    assert torch.isfinite(empty).all()


def test_cross_attention_block_alone():
    torch.manual_seed(7)
    block = VecoCrossAttention(tiny_config()).eval()
    hidden, memory = torch.randn(2, 4, HIDDEN), torch.randn(2, 6, HIDDEN)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    w = {f"b.{k}": v for k, v in block.state_dict().items()}
    keep = mask.bool()[:, None, :].expand(-1, 4, -1)
    expected = ref_post_ln(hidden, ref_attention(hidden, memory, w, "b.self", HEADS, keep), w,
                           "b.output", 1e-5)
    with torch.no_grad():
        torch.testing.assert_close(block(hidden, memory, mask), expected, atol=1e-6, rtol=0)


def test_sdpa_fallback_has_the_kernels_math():
    gen = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(3, 2, 5, 8, generator=gen) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    for m in (mask, None):
        torch.testing.assert_close(hf_veco._sdpa_cross_attention(q, k, v, m),
                                   kernel_module.cross_attention_reference(q, k, v, m),
                                   atol=1e-6, rtol=0)
    assert torch.count_nonzero(hf_veco._sdpa_cross_attention(q, k, v, mask)[2]) == 0


def test_copy_self_attention_to_cross_attention():
    net = make_net(seed=9)
    pairs = []
    for layer, cross in zip(net.roberta.encoder.layer, net.cross_attention):
        for name in ("query", "key", "value"):
            pairs.append((getattr(cross.self, name), getattr(layer.attention.self, name)))
        pairs += [(cross.output.dense, layer.attention.output.dense),
                  (cross.output.LayerNorm, layer.attention.output.LayerNorm)]
    assert not torch.equal(pairs[0][0].weight, pairs[0][1].weight)
    with torch.no_grad():  # make the LayerNorms distinguishable from their init
        for layer in net.roberta.encoder.layer:
            layer.attention.output.LayerNorm.weight.normal_()
            layer.attention.output.LayerNorm.bias.normal_()
    net.copy_self_attention_to_cross_attention()
    for target, source in pairs:
        for name in ("weight", "bias"):
            t, s = getattr(target, name), getattr(source, name)
            assert torch.equal(t, s) and t.data_ptr() != s.data_ptr()  # equal values, own storage


def _grads(net, loss):
    net.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_detached_memory_sends_no_gradient_through_the_memory_path(pair):
    x, mx, y, my = pair
    net = make_net(seed=10, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).train()

    def s_loss(memory):
        return net.lm_head(net.s_stream(x, mx, memory, my)).logsumexp(-1).mean()

    with torch.no_grad():
        constant = net.h_stream(y, my)  # no graph at all
    detached = _grads(net, s_loss(net.h_stream(y, my).detach()))
    reference = _grads(net, s_loss(constant))
    attached = _grads(net, s_loss(net.h_stream(y, my)))
    assert detached.keys() == reference.keys()
    for name in detached:
        torch.testing.assert_close(detached[name], reference[name], atol=0, rtol=0)
    assert detached["cross_attention.0.self.key.weight"].abs().sum() > 0  # K/V still learn
    # negative control: without the detach the memory path adds to the self-attention grads
    last = "roberta.encoder.layer.2.output.dense.weight"
    assert (attached[last] - detached[last]).abs().max() > 1e-6

    labels = torch.where(mx.bool(), x, torch.full_like(x, -100))
    out = net(x, mx, partner_input_ids=y, partner_attention_mask=my, labels=labels)
    manual = F.cross_entropy(net.lm_head(net.s_stream(x, mx, constant, my)).view(-1, VOCAB),
                             labels.view(-1))
    torch.testing.assert_close(out.loss, manual, atol=1e-6, rtol=0)
    forward_grads = _grads(net, out.loss)
    for name, grad in _grads(net, manual).items():  # forward() detaches the partner's H itself
        torch.testing.assert_close(forward_grads[name], grad, atol=1e-7, rtol=1e-6)


def test_partner_forward_rejects_unsupported_arguments(net, pair):
    x, mx, y, my = pair
    with pytest.raises(TypeError, match="token_type_ids"):
        net(x, mx, partner_input_ids=y, partner_attention_mask=my, token_type_ids=torch.zeros_like(x))


def test_register_is_idempotent():
    hf_veco.register()
    hf_veco.register()
    fields = {k: v for k, v in tiny_config().to_dict().items() if k != "model_type"}
    config = AutoConfig.for_model(MODEL_TYPE, **fields)
    assert type(config) is VecoConfig
    assert type(AutoModelForMaskedLM.from_config(config)) is VecoForMaskedLM
