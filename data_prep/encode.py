"""Subword encoding of raw MRC examples (`data_prep.mrc.RawExample`) into token-level
`data_prep.format.MRCExample`s: `<s> query </s></s> context </s>` with exact answer spans.

Never imports torch.distributed or DeepSpeed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from data_prep.format import MRCExample

if TYPE_CHECKING:
    from data_prep.mrc import MRCParams, RawExample


def _cut_bounds(text: str, spans: list[tuple[int, int]]) -> list[int]:
    """0, every span edge inside `text`, len(text): the piece boundaries of an encoded context."""
    return [0, *sorted({c for span in spans for c in span if 0 < c < len(text)}), len(text)]


def encode_examples(raw: list[RawExample], tokenizer, params: MRCParams,
                    stats: Counter) -> list[MRCExample]:
    """`<s> query </s></s> context </s>` with answers as exact token spans.

    Contexts are tokenized in pieces cut at the answer edges, so no subword ever straddles an
    answer (in zh/th/ar a subword would otherwise swallow neighbouring characters); a piece that
    continues a word drops SentencePiece's lone word-start token "▁". Query masks are inserted as
    the mask id, and special ids that come from the text itself (a literal "<mask>") become
    `<unk>`. The query is cut to max_query_tokens, the context to what is left of max_seq_len;
    an answer that does not fit whole is dropped (never clipped), and an answerable example
    that loses all its answers is counted as `answer_truncated` and kept as unanswerable.
    """
    if not raw:
        return []
    cls, sep, unk, mask = (tokenizer.cls_token_id, tokenizer.sep_token_id,
                           tokenizer.unk_token_id, tokenizer.mask_token_id)
    specials = set(tokenizer.all_special_ids) - {unk}
    word_start = tokenizer.convert_tokens_to_ids("\u2581")
    texts: list[str] = []
    glued: list[bool] = []
    plans = []
    for r in raw:
        query: list[int | None] = []  # None = mask, else index into texts
        for part in r.query_parts:
            if part is None:
                query.append(None)
            else:  # a part right after a mask continues its word unless whitespace follows
                glued.append(bool(query) and not part[:1].isspace())
                query.append(len(texts))
                texts.append(part.strip())
        bounds = _cut_bounds(r.context, r.answers)
        context_first = len(texts)
        for a, b in zip(bounds, bounds[1:]):
            texts.append(r.context[a:b].strip())
            glued.append(a > 0 and not r.context[a - 1].isspace())
        plans.append((query, context_first, len(texts)))
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for i, ids in enumerate(encoded):
        if glued[i] and ids and ids[0] == word_start:
            ids = ids[1:]
        if any(t in specials for t in ids):
            stats["special_token_in_text"] += 1
            ids = [unk if t in specials else t for t in ids]
        encoded[i] = ids

    out = []
    for r, (query, c_first, c_last) in zip(raw, plans):
        q_ids = [t for slot in query for t in ([mask] if slot is None else encoded[slot])]
        q_ids = q_ids[: params.max_query_tokens]
        piece_start, c_ids = [], []  # token index where each context piece starts
        for k in range(c_first, c_last):
            piece_start.append(len(c_ids))
            c_ids.extend(encoded[k])
        piece_start.append(len(c_ids))
        budget = params.max_seq_len - len(q_ids) - 4
        if len(c_ids) > budget:
            stats["context_truncated"] += 1
        kept = min(len(c_ids), budget)
        bounds = _cut_bounds(r.context, r.answers)
        context_start = len(q_ids) + 3
        spans = []
        for a_start, a_end in r.answers:
            first, last = bounds.index(a_start), bounds.index(a_end)  # answer = pieces [first, last)
            t_start, t_end = piece_start[first], piece_start[last] - 1
            if t_end >= kept or t_end < t_start:
                stats["answers_dropped"] += 1
                continue
            spans.append((context_start + t_start, context_start + t_end))
        if r.answerable and not spans:
            stats["answer_truncated"] += 1
        input_ids = [cls, *q_ids, sep, sep, *c_ids[:kept], sep]
        out.append(MRCExample(np.asarray(input_ids, np.int32), context_start,
                              context_start + kept, np.asarray(spans, np.int32).reshape(-1, 2)))
        stats["answerable" if spans else "unanswerable"] += 1
    stats["examples"] += len(out)
    return out
