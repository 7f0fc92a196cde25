"""finetune.mrc_form + finetune.decode: MRC layout, sliding windows (doc_stride = the step between
window starts, or None = truncation), decoding dense logits that favour the gold spans back to
exactly the gold text / spans / labels, EQA without a length cap, and both rationale readings."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from finetune.decode import decode_eqa, decode_pair, decode_tagging, explain_pair, explain_runs
from finetune.metrics import absa_scores, eqa_scores, ner_scores, pair_accuracy
from finetune.mrc_form import (
    SPECIAL_TOKENS,
    eqa_instances,
    encode,
    explain_instances,
    pair_instances,
    tagging_instances,
)
from finetune.queries import ABSA_QUERIES, CONLL_QUERIES, PAIR_QUERIES
from finetune.queries import WIKIANN_QUERIES as NER_QUERIES
from finetune.tasks import read_absa, read_ner, read_pair, read_squad
from paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
XLU = SHARED_DATA / "xlu"
pytestmark = pytest.mark.skipif(not XLU.is_dir(), reason="shared XLU samples not available")
HIGH, LOW = 8.0, -8.0


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A tiny XLM-R-layout SentencePiece unigram tokenizer trained on the XLU samples."""
    from data_prep.tokenizer import load_tokenizer, train_tokenizer

    folder = tmp_path_factory.mktemp("tok")
    lines = []
    for lang in ("en", "zh"):
        doc = json.loads((XLU / "xquad" / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        lines += [p["context"] for a in doc["data"][:6] for p in a["paragraphs"]]
    lines += [" ".join(s.tokens) for s in read_ner(XLU / "panx" / "dev-en.tsv")[:300]]
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    return load_tokenizer(train_tokenizer([corpus], 1500, folder / "out", num_threads=1))


def gold_logits(features, length: int | None = None) -> list[np.ndarray]:
    """LOW everywhere, HIGH at every gold span cell and at Z_00 of relevant windows."""
    out = []
    for f in features:
        n = length or len(f.input_ids)
        z = np.full((n, n), LOW)
        for s, e in f.answer_spans:
            z[s, e] = HIGH
        z[0, 0] = HIGH if f.relevant else LOW
        out.append(z)
    return out


# ---------------------------------------------------------------------------- layout, windows

def test_layout_query_truncation_and_offsets(tokenizer):
    examples = read_squad(XLU / "xquad" / "xquad.en.json")[:40]
    long_question = examples[0].__class__(
        "long", " ".join(["question"] * 200), examples[0].context, examples[0].answers)
    instances = eqa_instances([long_question, *examples])
    features = encode(instances, tokenizer, max_seq_len=128, doc_stride=32, max_query_tokens=16)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for f in features:
        ids = f.input_ids
        assert len(ids) <= 128 and ids[0] == cls and ids[-1] == sep
        assert ids[f.context_start - 2] == ids[f.context_start - 1] == sep
        assert f.context_end == len(ids) - 1
        assert (f.token_offsets[:f.context_start] == -1).all()
        assert (f.token_offsets[f.context_end:] == -1).all()
        assert (f.token_offsets[f.context_start:f.context_end] >= 0).all()
        assert f.relevant == (len(f.answer_spans) > 0)
        example = f.to_mrc_example()
        assert example.context_start == f.context_start and example.answerable == f.relevant
    first = next(f for f in features if f.example_id == "long")
    assert first.context_start == 16 + 3  # query cut to 16 tokens


def test_sliding_windows_cover_context_and_recover_every_answer(tokenizer):
    examples = read_squad(XLU / "xquad" / "xquad.en.json")
    examples = sorted(examples, key=lambda e: -len(e.context))[:30]  # the longest passages
    instances = eqa_instances(examples)
    stats = Counter()
    stride, max_seq_len, max_query = 64, 160, 24
    features = encode(instances, tokenizer, max_seq_len=max_seq_len, doc_stride=stride,
                      max_query_tokens=max_query, stats=stats)
    assert stats["windows_split"] == 30 and stats["features"] == len(features)
    assert stats["contexts_truncated"] == 0
    by_example: dict[str, list] = {}
    for f in features:
        by_example.setdefault(f.example_id, []).append(f)
    for inst in instances:
        windows = by_example[inst.id]
        assert [w.window_index for w in windows] == list(range(len(windows)))
        assert len(windows) >= 3
        full = tokenizer(inst.context, add_special_tokens=False, return_offsets_mapping=True)
        ids = full["input_ids"]
        q_len = min(len(tokenizer(inst.query, add_special_tokens=False)["input_ids"]), max_query)
        budget = max_seq_len - q_len - SPECIAL_TOKENS
        for k, w in enumerate(windows):
            # window k starts at k * stride (PMR QA/mQA/data.py: doc_start = len(spans) * stride)
            assert list(w.input_ids[w.context_start:w.context_end]) == \
                ids[k * stride:k * stride + budget]
        assert windows[-1].context_end - windows[-1].context_start + (len(windows) - 1) * stride \
            == len(ids)
        assert (len(windows) - 2) * stride + budget < len(ids)  # no window past the end
        for start, end in inst.answers:
            # an answer of at most budget - stride + 1 tokens always fits whole in some window
            n_tokens = sum(s < end and e > start for s, e in full["offset_mapping"])
            assert n_tokens <= budget - stride + 1
            recovered = {inst.context[w.token_offsets[s, 0]:w.token_offsets[e, 1]].strip()
                         for w in windows for s, e in w.answer_spans}
            assert recovered, f"answer of {inst.id} is in no window"
            assert any(inst.context[start:end] in text for text in recovered)
    assert stats["answers_inexact"] <= 1  # an answer starting inside a subword, if any


def test_doc_stride_is_a_step_not_an_overlap(tokenizer):
    """The same context, stride 30 vs 90 with a 100-token budget: starts 0, 30, 60, … vs 0, 90."""
    [example] = read_squad(XLU / "xquad" / "xquad.en.json")[:1]
    [inst] = eqa_instances([example])
    n = len(tokenizer(inst.context, add_special_tokens=False)["input_ids"])
    q_len = len(tokenizer(inst.query, add_special_tokens=False)["input_ids"])
    max_seq_len = 100 + q_len + SPECIAL_TOKENS
    assert n > 190
    for stride in (30, 90):
        windows = encode([inst], tokenizer, max_seq_len=max_seq_len, doc_stride=stride)
        expected = next(k for k in range(1, n) if (k - 1) * stride + 100 >= n)
        assert len(windows) == expected
        full = tokenizer(inst.context, add_special_tokens=False)["input_ids"]
        assert list(windows[1].input_ids[windows[1].context_start:][:5]) == \
            full[stride:stride + 5]


def test_doc_stride_none_truncates_like_the_reference(tokenizer):
    examples = sorted(read_squad(XLU / "xquad" / "xquad.en.json"), key=lambda e: -len(e.context))
    instances = eqa_instances(examples[:5])
    stats = Counter()
    features = encode(instances, tokenizer, max_seq_len=64, doc_stride=None, stats=stats)
    assert len(features) == len(instances) and stats["windows_split"] == 0
    assert stats["contexts_truncated"] == 5
    for f, inst in zip(features, instances):
        assert len(f.input_ids) == 64 and f.context_end == 63
        full = tokenizer(inst.context, add_special_tokens=False)["input_ids"]
        assert list(f.input_ids[f.context_start:f.context_end]) == full[:63 - f.context_start]


def test_doc_stride_must_fit(tokenizer):
    [inst] = eqa_instances(read_squad(XLU / "xquad" / "xquad.en.json")[:1])
    with pytest.raises(ValueError, match="doc_stride 200 must be at most the context window"):
        encode([inst], tokenizer, max_seq_len=96, doc_stride=200)
    with pytest.raises(ValueError, match="doc_stride >= 1"):
        encode([inst], tokenizer, max_seq_len=96, doc_stride=0)


# ---------------------------------------------------------------------------- decoding

def test_decode_eqa_returns_gold_text_across_windows(tokenizer):
    examples = read_squad(XLU / "xquad" / "xquad.zh.json")[:60]
    instances = eqa_instances(examples)
    stats = Counter()
    features = encode(instances, tokenizer, max_seq_len=80, doc_stride=20, stats=stats)
    assert stats["windows_split"] > 30
    predictions = decode_eqa(instances, features, gold_logits(features, length=80))
    exact = [e for e in examples if predictions[e.id] == e.answers[0][0]]
    assert len(exact) >= len(examples) - stats["answers_inexact"]
    scores = eqa_scores(examples, predictions, lang="zh")
    assert scores["exact_match"] >= 100.0 * len(exact) / len(examples)


def test_decode_eqa_has_no_length_cap_by_default_and_takes_torch(tokenizer):
    """PMR QA/mQA/utils.py generate_span: argmax over every context cell i ≤ j, no length cap."""
    import torch

    [example] = read_squad(XLU / "xquad" / "xquad.en.json")[:1]
    instances = eqa_instances([example])
    [feature] = encode(instances, tokenizer, max_seq_len=512)
    z = torch.full((len(feature.input_ids),) * 2, LOW)
    c0, c1 = feature.context_start, feature.context_end
    assert c1 - c0 > 100
    z[c0, c1 - 1] = 50.0  # the whole context: longer than any usual cap
    z[c0 + 1, c0 + 2] = 10.0
    z[c0 + 3, c0 + 2] = 60.0  # start > end, never chosen
    z[0, 0] = 99.0  # the [CLS] cell is not a span
    z[c0 - 1, c0 - 1] = 99.0  # nor a query / separator cell
    z[c1, c1] = 99.0  # nor the final </s>
    assert decode_eqa(instances, [feature], [z])[example.id] == example.context.strip()
    o = feature.token_offsets
    capped = decode_eqa(instances, [feature], [z], max_answer_tokens=30)[example.id]
    assert capped == example.context[o[c0 + 1, 0]:o[c0 + 2, 1]].strip()


@pytest.mark.parametrize("kind", ["ner", "absa"])
def test_decode_tagging_returns_gold_spans(tokenizer, kind):
    if kind == "ner":
        sentences, queries = read_ner(XLU / "panx" / "dev-de.tsv")[:80], NER_QUERIES
    else:
        sentences, queries = read_absa(XLU / "absa" / "gold-es-dev.txt")[:80], ABSA_QUERIES
    instances = tagging_instances(sentences, queries)
    assert len(instances) == len(sentences) * len(queries)
    stats = Counter()
    features = encode(instances, tokenizer, max_seq_len=96, doc_stride=48, max_query_tokens=16,
                      stats=stats)
    assert stats["windows_split"] > 10  # long sentences span several windows
    predictions = decode_tagging(instances, features, gold_logits(features))
    assert sorted(predictions, key=int) == [str(s.index) for s in sentences]
    for s in sentences:
        found = [(start, end, label) for start, end, label, _ in predictions[str(s.index)]]
        assert found == sorted((x.start, x.end, x.label) for x in s.spans)
    score = (ner_scores if kind == "ner" else absa_scores)(sentences, predictions)
    assert score["f1"] == pytest.approx(100.0)


def test_decode_tagging_word_alignment_threshold_and_merge(tokenizer):
    [sentence] = read_ner(XLU / "panx" / "dev-en.tsv")[:1]  # "Sioux Falls Arena ( Sioux …"
    instances = [i for i in tagging_instances([sentence], NER_QUERIES) if i.label == "ORG"]
    features = encode(instances, tokenizer, max_seq_len=24, doc_stride=6, max_query_tokens=8)
    assert len(features) >= 2
    text = sentence.text
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]

    def covers(f, span):
        o = f.token_offsets[f.context_start:f.context_end]
        return o[0, 0] <= span[0] and span[1] <= o[-1, 1]

    shared = next(w for w in words if covers(features[0], w) and covers(features[1], w))
    logits = [np.full((len(f.input_ids),) * 2, LOW) for f in features]
    off_edges = 0
    for f, z in zip(features, logits):
        o = f.token_offsets
        for i in range(f.context_start, f.context_end):
            for j in range(i, f.context_end):
                start, end = int(o[i, 0]), int(o[j, 1])
                if (start, end) == shared:
                    z[i, j] = max(z[i, j], 3.0 + f.window_index)  # merged; the max is kept
                elif text[start:end].strip() == "South Dakota":
                    z[i, j] = 0.0  # not above the threshold 0
                elif not ((start == 0 or text[start - 1] == " ") and
                          (end == len(text) or text[end] == " ")):
                    z[i, j] = 9.0  # starts or ends inside a word: never a tagging span
                    off_edges += 1
    assert off_edges > 0
    predictions = decode_tagging(instances, features, logits)["0"]
    assert predictions == [[shared[0], shared[1], "ORG", 3.0 + 1]]
    loose = decode_tagging(instances, features, logits, word_aligned=False)["0"]
    assert len(loose) > 1


def test_decode_pair_and_explain(tokenizer):
    pairs = read_pair(XLU / "xnli" / "dev-en.tsv")[:30]
    instances = pair_instances(pairs, "xnli")
    assert len(instances) == 3 * len(pairs)
    assert [i.label for i in instances[:3]] == list(PAIR_QUERIES["xnli"])
    for inst, pair in zip(instances[::3], pairs):
        (a0, a1), (b0, b1) = inst.segments
        assert inst.context[a0:a1] == pair.sentence1 and inst.context[b0:b1] == pair.sentence2
    assert sum(i.relevant for i in instances) == len(pairs)
    features = encode(instances, tokenizer)
    logits = gold_logits(features)
    # rationales: the first word of each sentence, in the gold label's context only
    wanted = {}
    for f, z in zip(features, logits):
        inst = instances[[i.id for i in instances].index(f.example_id)]
        if not inst.relevant:
            continue
        for k, (seg_start, seg_end) in enumerate(inst.segments):
            first_word = inst.context[seg_start:seg_end].split()[0]
            o = f.token_offsets
            cells = [(i, j) for i in range(f.context_start, f.context_end)
                     for j in range(i, f.context_end)
                     if inst.context[o[i, 0]:o[j, 1]].strip() == first_word
                     and o[i, 0] >= seg_start]
            i, j = min(cells)
            z[i, j] = 5.0 + k
            wanted[inst.source_id, k] = first_word
    predicted = decode_pair(instances, features, logits)
    assert predicted == {str(p.index): p.label for p in pairs}
    assert pair_accuracy(pairs, predicted)["accuracy"] == 100.0
    rationales = explain_pair(instances, features, logits)
    for pair in pairs:
        got = rationales[str(pair.index)]
        assert [r.sentence for r in got] == [0, 1]
        for r, sentence in zip(got, (pair.sentence1, pair.sentence2)):
            assert r.text == wanted[str(pair.index), r.sentence]
            assert sentence[r.start:r.end] == r.text


def test_unknown_label_without_query_is_an_error(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("EU NNP I-NP I-ORG\nGerman JJ I-NP I-MISC\n", encoding="utf-8")
    sentences = read_ner(path)
    with pytest.raises(ValueError, match=r"labels \['MISC'\] that have no query"):
        tagging_instances(sentences, NER_QUERIES)
    assert len(tagging_instances(sentences, CONLL_QUERIES)) == 4


def first_word_cell(feature, context: str, segment: tuple[int, int]) -> tuple[int, int]:
    """Token cell (i, j) covering exactly the first word of `segment` of `context`."""
    start, end = segment
    word = context[start:end].split()[0]
    o = feature.token_offsets
    return min((i, j) for i in range(feature.context_start, feature.context_end)
               for j in range(i, feature.context_end)
               if o[i, 0] >= start and context[o[i, 0]:o[j, 1]].strip() == word)


def test_explain_runs_swap_the_sentences_around_the_sep_token(tokenizer):
    """The paper's rationales: the predicted label's query over "Sen-1 SEP Sen-2" and over
    "Sen-2 SEP Sen-1"; each run gives the best span inside the sentence that comes first."""
    pairs = read_pair(XLU / "xnli" / "dev-en.tsv")[:12]
    instances = pair_instances(pairs, "xnli")
    predicted = {str(p.index): "contradiction" for p in pairs}
    runs = explain_instances(instances, predicted, tokenizer.sep_token)
    assert [r.id for r in runs[:2]] == ["0:explain:0", "0:explain:1"] and len(runs) == 24
    for pair, (a, b) in zip(pairs, zip(runs[::2], runs[1::2])):
        assert a.context == f"{pair.sentence1} </s> {pair.sentence2}"
        assert b.context == f"{pair.sentence2} </s> {pair.sentence1}"
        assert a.query == b.query == PAIR_QUERIES["xnli"]["contradiction"]
    features = encode(runs, tokenizer, max_seq_len=256)
    assert len(features) == len(runs)
    logits = []
    for f, run in zip(features, runs):
        context_ids = list(f.input_ids[f.context_start:f.context_end])
        assert context_ids.count(tokenizer.sep_token_id) == 1  # the SEP between the sentences
        z = np.full((len(f.input_ids),) * 2, LOW)
        z[first_word_cell(f, run.context, run.segments[1])] = 9.0  # second sentence: ignored
        z[first_word_cell(f, run.context, run.segments[0])] = 5.0
        logits.append(z)
    rationales = explain_runs(runs, features, logits)
    for pair in pairs:
        got = rationales[str(pair.index)]
        assert [r.sentence for r in got] == [0, 1]
        for r, sentence in zip(got, (pair.sentence1, pair.sentence2)):
            assert r.text == sentence.split()[0] == sentence[r.start:r.end]
            assert r.score == 5.0
