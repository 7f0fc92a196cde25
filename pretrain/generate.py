"""Blank filling with a GLM network (spec mGLM.md A3.1): `BlankFiller`, `load_filler` and the
`python -m pretrain.generate` command line.

Every blank ([MASK], [sMASK] or [gMASK]) is filled **left to right, one at a time**
(`M:generate_samples.py:93-135`): the leftmost mask of the current text is located, the text is
encoded bidirectionally once (sep = its length, A1.6) into the KV cache, decoding starts at
`[sop]` with position = the mask's position and block positions 1, 2, … (A1.7,
`M:generate_samples.py:32-46`), stops at `[eop]`/eos or after `max_new_tokens`, and the
generated tokens replace the mask (end token dropped). The filled text is the context of the
next blank, so later positions shift.

Fixes of the reference's pitfalls (A3.1, A5), on purpose:
  * greedy is greedy (`num_beams=1, do_sample=False` → argmax); the reference's `BaseStrategy`
    always samples;
  * beam search is deterministic (top-k of cumulative log-probs; the reference samples its
    candidates), and stops early only when no live beam can still win, so early stopping never
    changes the answer;
  * `min_new_tokens` counts the tokens of the current blank (the reference's `min_tgt_length`
    compares against the whole sequence);
  * the "has a mask" / "ends with a mask" tests look at token ids (the reference's substring test
    `'MASK]' in text` also fires on plain text that happens to contain "MASK]");
  * generation never emits command tokens other than the end tokens (no [MASK]/[sMASK]/[gMASK],
    [CLS], [sop], [dBLOCK], padded-vocabulary rows): a generated mask would be filled again by
    the next round and could loop;
  * hypotheses are ranked by sum of log-probs / len ** length_penalty (len counts the end
    token; HF's convention) instead of the reference's ((5 + len) / 6) ** length_penalty;
  * sampling draws from one seeded `torch.Generator` per input (`seed`, input index), so a run
    is reproducible and an input's sample does not depend on the batch it was packed into.

Batches: R rows (inputs × beams) share one forward pass; contexts are right-padded to the
longest, the decoded tokens follow the padding, and an explicit bool attention mask
[R, Q, K] hides the padding (`_attention_mask`). A batch gives the outputs of one-by-one calls.

This module never trains and never changes the model it is given (eval mode, inference only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

GENERATION_MASK = "[gMASK]"  # appended when the text has no mask (task-mask on, A3.1)
#: the model config's copies of the tokenizer ids, checked against the tokenizer when present
_CONFIG_ID_NAMES = {"eos": ("eos_token_id", "pad_token_id"), "cls": ("cls_token_id",),
                    "mask": ("mask_token_id",), "smask": ("smask_token_id",),
                    "gmask": ("gmask_token_id",), "sop": ("sop_token_id",),
                    "eop": ("eop_token_id",)}


@dataclass(frozen=True)
class GenerationConfig:
    """How each blank is decoded. Lengths count the tokens of one blank, its end token included."""

    max_new_tokens: int = 256
    """most tokens generated per blank (end token included); a blank that reaches it is cut
    (stop "length"). Also capped so the filled text fits the model's positions. 256 = the
    reference's --out-seq-length default (M:arguments.py add_text_generate_args; spec A3.1)."""
    num_beams: int = 1
    """1 = greedy or sampling; >1 = deterministic beam search"""
    do_sample: bool = False
    """sample (temperature, top_k, top_p, seed) instead of argmax; only with num_beams=1"""
    top_k: int = 0
    """sampling: keep the k most likely tokens (0 = all)"""
    top_p: float = 1.0
    """sampling: keep the smallest set of tokens whose probability reaches top_p (1 = all)"""
    temperature: float = 1.0
    """sampling: logits / temperature"""
    seed: int = 0
    """sampling: input i of a `fill` call draws from a Generator seeded with (seed, i)"""
    length_penalty: float = 1.0
    """score of a blank = sum of log-probs / len ** length_penalty (HF convention); beam search
    ranks hypotheses by it"""
    no_repeat_ngram_size: int = 0
    """>0: no n-gram occurs twice within one blank's generated tokens"""
    min_new_tokens: int = 0
    """end tokens are banned until the blank has this many tokens"""
    batch_size: int = 8
    """inputs decoded together (each with num_beams rows)"""
    use_cache: bool = True
    """False: recompute the whole sequence at every step (same outputs, for benchmarks)"""

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.num_beams >= 1, f"num_beams must be >= 1, got {self.num_beams}"),
            (not (self.do_sample and self.num_beams > 1),
             "do_sample works with num_beams=1 only (beam search here is deterministic)"),
            (self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (math.isfinite(self.length_penalty),
             f"length_penalty must be finite, got {self.length_penalty}"),
            (self.no_repeat_ngram_size >= 0,
             f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}"),
            (self.min_new_tokens >= 0, f"min_new_tokens must be >= 0, got {self.min_new_tokens}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class GlmTokenIds:
    """Ids of the command tokens generation needs, read from a GLM tokenizer."""

    cls: int
    eos: int
    masks: tuple[int, ...]  # [MASK], [sMASK], [gMASK]
    gmask: int
    sop: int
    eop: int
    vocab_size: int  # len(tokenizer); rows beyond it are embedding padding (A2.2)
    never_generated: tuple[int, ...]  # command tokens other than the end tokens

    @property
    def end(self) -> tuple[int, int]:
        return (self.eop, self.eos)

    @classmethod
    def from_tokenizer(cls, tokenizer, config=None) -> GlmTokenIds:
        """ValueError unless `tokenizer` has GLM's layout and agrees with the model `config`'s
        copies of the ids."""
        from data_prep.tokenizer import GLM_TOKENS
        from pretrain.glm_blank import GlmIds

        ids = GlmIds.from_hf_tokenizer(tokenizer)
        found = {"eos": ids.eos, "cls": ids.cls, "mask": ids.mask, "smask": ids.smask,
                 "gmask": ids.gmask, "sop": ids.sop, "eop": ids.eop}
        for key, names in _CONFIG_ID_NAMES.items():
            for name in names:
                value = getattr(config, name, None) if config is not None else None
                if value is not None and int(value) != found[key]:
                    raise ValueError(f"model config {name}={value} but the tokenizer's {key} "
                                     f"token is {found[key]}: model and tokenizer do not belong "
                                     f"together")
        commands = range(ids.pieces, ids.pieces + len(GLM_TOKENS))  # contiguous (A2.2)
        never = tuple(i for i in commands if i not in (ids.eos, ids.eop))
        return cls(cls=ids.cls, eos=ids.eos, masks=(ids.mask, ids.smask, ids.gmask),
                   gmask=ids.gmask, sop=ids.sop, eop=ids.eop, vocab_size=len(tokenizer),
                   never_generated=never)


@dataclass
class _Blank:
    """One decoded blank: its tokens (end token excluded), sum of log-probs (end token
    included), score = logprob / len ** length_penalty, and why it stopped."""

    ids: list[int]
    logprob: float
    score: float
    stop: str  # "eop" | "eos" | "length"


@dataclass
class _Query:
    ids: list[int]  # current context, [CLS] first
    blanks: list[_Blank] = field(default_factory=list)


class BlankFiller:
    """Fills the blanks of texts with a `GlmForBlankInfilling` (spec A3.1, pitfalls fixed as the
    module docstring lists).

    `model`: any module with the `GlmForBlankInfilling.forward` signature (input_ids [B,S],
    position_ids [B,2,S], attention_mask bool [B,Q,K], past_key_values, use_cache) and a
    `config.max_position_embeddings`; `tokenizer`: the GLM tokenizer it was trained with.
    """

    def __init__(self, model, tokenizer, *, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.ids = GlmTokenIds.from_tokenizer(tokenizer, getattr(model, "config", None))
        self.max_positions = int(model.config.max_position_embeddings)
        rows = int(model.config.vocab_size)  # embedding rows (padded vocabulary, A2.2)
        if rows < self.ids.vocab_size:
            raise ValueError(f"the tokenizer has {self.ids.vocab_size} ids but the model only "
                             f"{rows} embeddings")

    # ------------------------------------------------------------------ queries

    def prepare(self, text: str) -> list[int]:
        """Query ids as mGLM builds them (M:generate_samples.py:74-87): ` [gMASK]` appended when
        the text holds no mask token, `[CLS]` first, eos last unless the text ends with a mask.
        Raises ValueError when the query is longer than the model's positions."""
        encode = self.tokenizer.encode
        ids = list(encode(text, add_special_tokens=False))
        if not any(i in self.ids.masks for i in ids):
            ids = list(encode(f"{text} {GENERATION_MASK}", add_special_tokens=False))
        query = [self.ids.cls] + ids
        if ids[-1] not in self.ids.masks:
            query.append(self.ids.eos)
        if len(query) > self.max_positions:
            raise ValueError(f"the query is {len(query)} tokens with [CLS]/eos, longer than the "
                             f"model's {self.max_positions} positions")
        return query

    def fill(self, texts: Sequence[str], *,
             strategy: GenerationConfig = GenerationConfig()) -> list[dict]:
        """Fill every blank of every text. Returns one dict per text:
        {"input", "output" (filled text), "output_ids" (its ids, without [CLS]/eos),
        "blanks": [{"text", "ids", "score", "logprob", "stop"}, …] in filling order (= left to
        right)}. A query that does not fit the model raises ValueError naming its index."""
        queries = []
        for index, text in enumerate(texts):
            try:
                queries.append(self.prepare(text))
            except ValueError as err:
                raise ValueError(f"input {index}: {err}") from None
        results = self.fill_ids(queries, strategy=strategy)
        for text, result in zip(texts, results, strict=True):
            result["input"] = text
        return results

    @torch.inference_mode()
    def fill_ids(self, queries: Sequence[Sequence[int]], *,
                 strategy: GenerationConfig = GenerationConfig(),
                 first_index: int = 0) -> list[dict]:
        """`fill` for queries already built (`prepare`: [CLS] first, masks as ids).
        `first_index`: sampling seeds query j with (seed, first_index + j), so a long input
        read in chunks samples as if it were filled in one call."""
        cfg = strategy
        states = [_Query(list(map(int, q))) for q in queries]
        for index, state in enumerate(states):
            if not state.ids or state.ids[0] != self.ids.cls:
                raise ValueError(f"query {index} does not start with [CLS] (use prepare)")
            if len(state.ids) > self.max_positions:
                raise ValueError(f"query {index} is {len(state.ids)} tokens, longer than the "
                                 f"model's {self.max_positions} positions")
        generators = [self._generator(cfg.seed, first_index + i) for i in range(len(states))] \
            if cfg.do_sample else None
        for start in range(0, len(states), cfg.batch_size):
            group = range(start, min(start + cfg.batch_size, len(states)))
            while True:
                active = [i for i in group if self._leftmost_mask(states[i].ids) is not None]
                if not active:
                    break
                contexts = [states[i].ids for i in active]
                mask_pos = [self._leftmost_mask(c) for c in contexts]
                # the filled text must fit the positions: len(ctx) - 1 + n <= max_positions;
                # block positions run up to the limit (A1.7), so it stays below the table size
                limits = [min(cfg.max_new_tokens, self.max_positions - len(c) + 1,
                              self.max_positions - 1) for c in contexts]
                if cfg.num_beams > 1:
                    blanks = self._beam_search(contexts, mask_pos, limits, cfg)
                else:
                    gens = [generators[i] for i in active] if generators else None
                    blanks = self._greedy_or_sample(contexts, mask_pos, limits, cfg, gens)
                for i, pos, blank in zip(active, mask_pos, blanks, strict=True):
                    state = states[i]
                    state.ids = state.ids[:pos] + blank.ids + state.ids[pos + 1:]
                    state.blanks.append(blank)
        return [self._result(state) for state in states]

    def _leftmost_mask(self, ids: list[int]) -> int | None:
        for pos, token in enumerate(ids):
            if token in self.ids.masks:
                return pos
        return None

    def _generator(self, seed: int, index: int) -> torch.Generator:
        state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(state[0]) << 32 | int(state[1]))
        return gen

    def _result(self, state: _Query) -> dict:
        ids = state.ids[1:]
        if ids and ids[-1] == self.ids.eos:
            ids = ids[:-1]
        decode = self.tokenizer.decode
        return {"output": decode(ids), "output_ids": ids,
                "blanks": [{"text": decode(b.ids), "ids": b.ids, "score": b.score,
                            "logprob": b.logprob, "stop": b.stop} for b in state.blanks]}

    # ------------------------------------------------------------------ decoding

    def _stop_name(self, token: int) -> str:
        return "eop" if token == self.ids.eop else "eos"

    def _constrained_logprobs(self, logits: Tensor, histories: list[list[int]],
                              cfg: GenerationConfig) -> Tensor:
        """log_softmax of the model's logits [R, V] with the banned tokens at -inf (not
        renormalised, so a chosen token's value is the model's log-prob)."""
        logprobs = F.log_softmax(logits.float(), dim=-1)
        logprobs[:, self.ids.vocab_size:] = -math.inf
        logprobs[:, list(self.ids.never_generated)] = -math.inf
        for row, history in enumerate(histories):
            if len(history) < cfg.min_new_tokens:
                logprobs[row, list(self.ids.end)] = -math.inf
            banned = _repeated_ngram_bans(history, cfg.no_repeat_ngram_size)
            if banned:
                logprobs[row, banned] = -math.inf
        return logprobs

    def _greedy_or_sample(self, contexts, mask_pos, limits, cfg: GenerationConfig,
                          generators: list[torch.Generator] | None) -> list[_Blank]:
        rows = len(contexts)
        stepper = _Stepper(self.model, contexts, mask_pos, self.ids, cfg.use_cache, self.device)
        histories: list[list[int]] = [[] for _ in range(rows)]
        logprob_sums = [0.0] * rows
        stops: list[str | None] = [None] * rows
        logits = stepper.first()
        while True:
            logprobs = self._constrained_logprobs(logits, histories, cfg)
            if generators is None:
                chosen = logprobs.argmax(dim=-1).tolist()
            else:
                chosen = [_sample(logprobs[r], cfg, generators[r]) if stops[r] is None else -1
                          for r in range(rows)]
            for r in range(rows):
                if stops[r] is not None:
                    continue
                token = chosen[r]
                value = float(logprobs[r, token])
                if not math.isfinite(value):  # every token banned: nothing can follow
                    stops[r] = "length"
                    continue
                logprob_sums[r] += value
                if token in self.ids.end:
                    stops[r] = self._stop_name(token)
                    continue
                histories[r].append(token)
                if len(histories[r]) >= limits[r]:
                    stops[r] = "length"
            if all(s is not None for s in stops):
                break
            fed = [h[-1] if stops[r] is None else self.ids.eos
                   for r, h in enumerate(histories)]
            logits = stepper.step(torch.tensor(fed, device=self.device))
        blanks = []
        for r in range(rows):
            length = len(histories[r]) + (stops[r] in ("eop", "eos"))
            blanks.append(_Blank(histories[r], logprob_sums[r],
                                 _normalise(logprob_sums[r], length, cfg.length_penalty),
                                 stops[r]))
        return blanks

    def _beam_search(self, contexts, mask_pos, limits, cfg: GenerationConfig) -> list[_Blank]:
        """Deterministic beam search, one group of `num_beams` rows per input. At each step the
        (|end|+1)·k best continuations by cumulative log-prob are examined in order: an end
        token ranked within the top k closes a hypothesis, the first k others become the live
        beams. An input stops when its best finished score beats the best score any live beam
        could still reach; at its limit the live beams are closed as "length" hypotheses."""
        k = cfg.num_beams
        n_inputs = len(contexts)
        lp = cfg.length_penalty
        rows = n_inputs * k
        stepper = _Stepper(self.model, [c for c in contexts for _ in range(k)],
                           [p for p in mask_pos for _ in range(k)], self.ids, cfg.use_cache,
                           self.device)
        scores = torch.full((n_inputs, k), -math.inf, dtype=torch.float64)
        scores[:, 0] = 0.0  # one live beam at first, so the k beams do not start as copies
        histories: list[list[int]] = [[] for _ in range(rows)]
        finished: list[list[_Blank]] = [[] for _ in range(n_inputs)]
        done = [False] * n_inputs
        n_candidates = (len(self.ids.end) + 1) * k  # enough to find k non-end continuations
        logits = stepper.first()
        step = 0
        while True:
            step += 1  # tokens per hypothesis after this step
            logprobs = self._constrained_logprobs(logits, histories, cfg).double().cpu()
            vocab = logprobs.shape[-1]
            total = (scores.reshape(rows, 1) + logprobs).reshape(n_inputs, k * vocab)
            top_scores, top_index = total.topk(min(n_candidates, k * vocab), dim=1)
            parents = list(range(rows))
            fed = [self.ids.eos] * rows
            new_scores = scores.clone()
            new_histories = [list(h) for h in histories]
            for b in range(n_inputs):
                if done[b]:
                    continue
                live = 0
                new_scores[b] = -math.inf
                for rank, (value, index) in enumerate(zip(top_scores[b].tolist(),
                                                          top_index[b].tolist())):
                    if value == -math.inf or live == k:
                        break
                    beam, token = divmod(index, vocab)
                    parent = b * k + beam
                    if token in self.ids.end:
                        if rank < k:
                            finished[b].append(_Blank(list(histories[parent]), value,
                                                      _normalise(value, step, lp),
                                                      self._stop_name(token)))
                        continue
                    row = b * k + live
                    parents[row] = parent
                    fed[row] = token
                    new_scores[b, live] = value
                    new_histories[row] = histories[parent] + [token]
                    live += 1
                live_scores = [s for s in new_scores[b].tolist() if s != -math.inf]
                if step >= limits[b] or not live_scores:
                    for j, value in enumerate(new_scores[b].tolist()):
                        if value != -math.inf:
                            finished[b].append(_Blank(new_histories[b * k + j], value,
                                                      _normalise(value, step, lp), "length"))
                    done[b] = True
                elif finished[b]:
                    best = max(h.score for h in finished[b])
                    # a live beam's log-prob can only fall; its best score is at the longest
                    # length when lp > 0, at the next step when lp <= 0
                    reach = limits[b] if lp > 0 else step + 1
                    done[b] = best >= max(_normalise(s, reach, lp) for s in live_scores)
            scores, histories = new_scores, new_histories
            if all(done):
                break
            logits = stepper.step(torch.tensor(fed, device=self.device),
                                  torch.tensor(parents, device=self.device))
        return [max(hyps, key=lambda h: h.score) for hyps in finished]  # first of ties wins


def _normalise(logprob: float, length: int, length_penalty: float) -> float:
    """HF's length normalisation, score / len ** lp (the reference divides by
    ((5 + len) / 6) ** lp, M:beam_search_strategy.py)."""
    return logprob / max(length, 1) ** length_penalty


def _repeated_ngram_bans(history: list[int], n: int) -> list[int]:
    """Tokens that would complete an n-gram already present in `history`."""
    if n <= 0 or len(history) < n - 1:
        return []
    prefix = tuple(history[len(history) - n + 1:]) if n > 1 else ()
    return [history[i + n - 1] for i in range(len(history) - n + 1)
            if tuple(history[i:i + n - 1]) == prefix]


def _sample(logprobs: Tensor, cfg: GenerationConfig, generator: torch.Generator) -> int:
    """One token from logprobs [V] (banned = -inf) after temperature, top-k and top-p."""
    logits = logprobs / cfg.temperature
    if not torch.isfinite(logits).any():
        return 0  # every token banned; the caller stops this row
    if cfg.top_k > 0:
        kth = logits.topk(min(cfg.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if cfg.top_p < 1.0:
        ordered, order = logits.sort(descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= cfg.top_p  # keep up to reaching top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), -math.inf)
    probs = logits.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class _Stepper:
    """Runs the network for R rows, each decoding one blank of its own context.

    Row r (S = Lmax + 1 + t after t fed tokens): its context (L_r tokens, positions 0…L_r−1,
    block position 0), padding up to Lmax, then `[sop]` and the fed tokens (position = the
    mask's, block positions 1, 2, …; A3.1, M:generate_samples.py:32-46). Query i sees key j iff
    j < L_r (the real context, bidirectional, A1.6) or Lmax <= j <= i (causal over the decoded
    part). Padding keys are never seen; padding queries' outputs are unused.
    """

    def __init__(self, model, contexts: list[list[int]], mask_pos: list[int], ids: GlmTokenIds,
                 use_cache: bool, device: torch.device):
        self.model = model
        self.use_cache = use_cache
        self.device = device
        self.lengths = torch.tensor([len(c) for c in contexts], device=device)  # [R]
        self.width = int(self.lengths.max())
        rows = len(contexts)
        context = torch.full((rows, self.width), ids.eos, dtype=torch.long)
        positions = torch.zeros((rows, self.width), dtype=torch.long)
        for r, ctx in enumerate(contexts):
            context[r, :len(ctx)] = torch.tensor(ctx)
            positions[r, :len(ctx)] = torch.arange(len(ctx))
        self.context = context.to(device)  # [R, Lmax]
        self.context_positions = positions.to(device)  # [R, Lmax]
        self.mask_pos = torch.tensor(mask_pos, device=device)  # [R]
        self.fed = torch.full((rows, 1), ids.sop, dtype=torch.long, device=device)  # [R, 1+t]
        self.cache = None

    def _attention_mask(self, first_query: int, total: int) -> Tensor:
        """bool [R, total - first_query, total], True = attend."""
        i = torch.arange(first_query, total, device=self.device)[:, None]  # [Q, 1]
        j = torch.arange(total, device=self.device)[None, :]  # [1, K]
        decoded = (j >= self.width) & (j <= i) & (i >= self.width)  # [Q, K]
        return (j[None] < self.lengths[:, None, None]) | decoded[None]

    def _positions(self, first: int) -> Tensor:
        """position_ids [R, 2, n] of the fed tokens first…(1+t)−1 (block position = index+1)."""
        n = self.fed.shape[1] - first
        rows = self.fed.shape[0]
        block = torch.arange(first + 1, first + 1 + n, device=self.device).expand(rows, n)
        return torch.stack([self.mask_pos[:, None].expand(rows, n), block], dim=1)

    def _full_inputs(self) -> tuple[Tensor, Tensor]:
        input_ids = torch.cat([self.context, self.fed], dim=1)  # [R, S]
        context_pos = torch.stack([self.context_positions,
                                   torch.zeros_like(self.context_positions)], dim=1)
        return input_ids, torch.cat([context_pos, self._positions(0)], dim=2)  # [R, 2, S]

    def first(self) -> Tensor:
        """Encode the contexts and `[sop]`; logits [R, V] for the first blank token."""
        input_ids, position_ids = self._full_inputs()
        out = self.model(input_ids=input_ids, position_ids=position_ids,
                         attention_mask=self._attention_mask(0, input_ids.shape[1]),
                         use_cache=self.use_cache)
        self.cache = out.past_key_values if self.use_cache else None
        return out.logits[:, -1].float()

    def step(self, tokens: Tensor, parents: Tensor | None = None) -> Tensor:
        """Feed tokens [R] (row r continues row parents[r]'s hypothesis); logits [R, V]."""
        if parents is not None:
            self.fed = self.fed.index_select(0, parents)
            if self.cache is not None:
                self.cache = _reorder_cache(self.cache, parents)
        self.fed = torch.cat([self.fed, tokens[:, None]], dim=1)
        total = self.width + self.fed.shape[1]
        if self.use_cache:
            out = self.model(input_ids=tokens[:, None],
                             position_ids=self._positions(self.fed.shape[1] - 1),
                             attention_mask=self._attention_mask(total - 1, total),
                             past_key_values=self.cache, use_cache=True)
            self.cache = out.past_key_values
        else:
            input_ids, position_ids = self._full_inputs()
            out = self.model(input_ids=input_ids, position_ids=position_ids,
                             attention_mask=self._attention_mask(0, total))
        return out.logits[:, -1].float()


def _reorder_cache(cache, parents: Tensor):
    if hasattr(cache, "reorder_cache"):  # a transformers Cache object
        cache.reorder_cache(parents)
        return cache
    return [tuple(t.index_select(0, parents.to(t.device)) for t in layer) for layer in cache]


# ---------------------------------------------------------------------- loading and CLI


def load_filler(model_dir: str | Path, *, device: str | torch.device = "cpu") -> BlankFiller:
    """A `BlankFiller` for a saved GLM folder (`save_pretrained` of a `GlmForBlankInfilling` +
    its GLM tokenizer, as `pretrain.glm_export` writes it). The network is built with this
    repository's `pretrain.hf_glm` classes, so the folder's remote-code copy is never run."""
    from transformers import PreTrainedTokenizerFast

    from pretrain.hf_glm import MODEL_TYPE, GlmForBlankInfilling

    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: pass a folder exported with "
                                f"`python -m pretrain.convert_to_hf` (model + tokenizer)")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != MODEL_TYPE:
        raise ValueError(f"{folder} holds a {model_type!r} model, not a GLM ({MODEL_TYPE!r})")
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{folder} holds no tokenizer.json: save the GLM tokenizer "
                                f"into the model folder")
    model = GlmForBlankInfilling.from_pretrained(str(folder))
    # not AutoTokenizer: it reads config.json's auto_map and asks on stdin about remote code
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return BlankFiller(model, tokenizer, device=device)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    d = GenerationConfig()
    parser = _OneLineParser(
        prog="python -m pretrain.generate",
        description="Fill the [MASK]/[sMASK]/[gMASK] blanks of text lines with an exported GLM "
                    "folder, left to right (a line without a mask gets ' [gMASK]' appended). "
                    "Writes one JSON object per line: {id, input, output, blanks}.")
    parser.add_argument("--model", required=True, help="exported GLM folder (model + tokenizer)")
    parser.add_argument("--input", default="-", help="text file, one query per line (- = stdin)")
    parser.add_argument("--output", default="-", help="JSON-lines file (- = stdout)")
    parser.add_argument("--with-id", action="store_true",
                        help="input lines are `id<TAB>text` (default id: the line number)")
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    parser.add_argument("--num-beams", type=int, default=d.num_beams)
    parser.add_argument("--length-penalty", type=float, default=d.length_penalty)
    parser.add_argument("--no-repeat-ngram-size", type=int, default=d.no_repeat_ngram_size)
    parser.add_argument("--min-new-tokens", type=int, default=d.min_new_tokens)
    parser.add_argument("--do-sample", action="store_true")
    parser.add_argument("--top-k", type=int, default=d.top_k)
    parser.add_argument("--top-p", type=float, default=d.top_p)
    parser.add_argument("--temperature", type=float, default=d.temperature)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole sequence at each step (no KV cache)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    return parser


def read_queries(lines: Iterable[str], *, with_id: bool) -> list[tuple[str, str]]:
    """(id, text) of every non-empty line; ids default to the 1-based line number."""
    queries = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if with_id:
            if "\t" not in line:
                raise ValueError(f"line {number}: --with-id expects `id<TAB>text`")
            query_id, text = line.split("\t", 1)
        else:
            query_id, text = str(number), line
        queries.append((query_id, text))
    return queries


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        strategy = GenerationConfig(
            max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
            do_sample=args.do_sample, top_k=args.top_k, top_p=args.top_p,
            temperature=args.temperature, seed=args.seed, length_penalty=args.length_penalty,
            no_repeat_ngram_size=args.no_repeat_ngram_size, min_new_tokens=args.min_new_tokens,
            batch_size=args.batch_size, use_cache=not args.no_cache)
        if args.input == "-":
            queries = read_queries(sys.stdin, with_id=args.with_id)
        else:
            with open(args.input, encoding="utf-8") as f:
                queries = read_queries(f, with_id=args.with_id)
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device on this machine")
        filler = load_filler(args.model, device=device)
        prepared = []
        for query_id, text in queries:
            try:
                prepared.append(filler.prepare(text))
            except ValueError as err:
                raise ValueError(f"input {query_id}: {err}") from None
        out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: a bad --device string
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        chunk = strategy.batch_size * 4
        for start in range(0, len(queries), chunk):
            results = filler.fill_ids(prepared[start:start + chunk], strategy=strategy,
                                      first_index=start)
            for (query_id, text), result in zip(queries[start:start + chunk], results,
                                                strict=True):
                record = {"id": query_id, "input": text, "output": result["output"],
                          "blanks": result["blanks"]}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
