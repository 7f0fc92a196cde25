"""finetune.standard: the XLM-R baseline with stock transformers heads — loading plain XLM-R and
mPMR-exported folders, EQA windows stepping by doc_stride, labels on first subwords, decoding of
oracle logits back to the gold annotations, every task learning on a tiny model on CPU with
predictions that `finetune.evaluate` scores to the same numbers, save / reload, determinism and
gradient accumulation."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune import evaluate as evaluate_cli
from finetune import metrics, standard, tasks, train_loop
from paths import SHARED_DATA

XLU = SHARED_DATA / "xlu"
pytestmark = pytest.mark.skipif(not XLU.is_dir(), reason="shared XLU samples not available")
SCORERS = {"eqa": metrics.eqa_scores, "ner": metrics.ner_scores, "absa": metrics.absa_scores,
           "pair": metrics.pair_accuracy}
READERS = {"eqa": tasks.read_squad, "ner": tasks.read_ner, "absa": tasks.read_absa,
           "pair": tasks.read_pair}
HEADS = {"eqa": "XLMRobertaForQuestionAnswering", "ner": "XLMRobertaForTokenClassification",
         "absa": "XLMRobertaForTokenClassification", "pair": "XLMRobertaForSequenceClassification"}
BASE = {"batch_size": 8, "max_seq_len": 128, "max_query_tokens": 16, "doc_stride": 48,
        "warmup_ratio": 0.06, "weight_decay": 0.0, "seed": 0, "grad_accum": 1, "log_every": 5}
# lr / epochs that make a 2-layer, 32-wide model fit ~20 records in a few seconds
TRAIN = {"eqa": {"lr": 3e-3, "epochs": 20.0}, "ner": {"lr": 5e-3, "epochs": 25.0},
         "absa": {"lr": 5e-3, "epochs": 30.0}, "pair": {"lr": 3e-3, "epochs": 30.0}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on two shared cores run these tiny models ~20× slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blocks(src: Path, dst: Path, n: int) -> Path:
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()][:n]
    dst.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Slices of the shared samples: 24 PAN-X / ABSA sentences, 16 PAWS-X pairs, 6 XQuAD
    questions (2 paragraphs × 3)."""
    root = tmp_path_factory.mktemp("xlu")
    pawsx = root / "pawsx.tsv"
    pawsx.write_text("\n".join((XLU / "pawsx" / "test-en.tsv").read_text(encoding="utf-8")
                               .splitlines()[:16]) + "\n", encoding="utf-8")
    doc = json.loads((XLU / "xquad" / "xquad.en.json").read_text(encoding="utf-8"))
    article = doc["data"][0]
    paragraphs = [{**p, "qas": p["qas"][:3]} for p in article["paragraphs"][:2]]
    xquad = root / "xquad.json"
    xquad.write_text(json.dumps({"data": [{**article, "paragraphs": paragraphs}]}),
                     encoding="utf-8")
    return {"ner": _blocks(XLU / "panx" / "dev-en.tsv", root / "ner.tsv", 24),
            "absa": _blocks(XLU / "absa" / "gold-en-train.txt", root / "absa.txt", 24),
            "pair": pawsx, "eqa": xquad}


@pytest.fixture(scope="module")
def records(data) -> dict[str, list]:
    return {task: READERS[task](path) for task, path in data.items()}


def _tiny_fields(tokenizer) -> dict:
    return {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 130,
            "type_vocab_size": 1, "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data) -> dict[str, Path]:
    """A SentencePiece tokenizer trained on the samples, and two tiny random encoders with it:
    "mpmr" (`MPMRForSpanExtraction`, as `pretrain.convert_to_hf` writes) and "xlmr" (a plain
    `XLMRobertaModel` folder with its pooler, like an official download)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from data_prep.tokenizer import load_tokenizer, train_tokenizer
    from pretrain.hf_mpmr import MPMRConfig, MPMRForSpanExtraction

    root = tmp_path_factory.mktemp("models")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(p.read_text(encoding="utf-8") for p in data.values()),
                      encoding="utf-8")
    tokenizer = load_tokenizer(train_tokenizer([corpus], 1000, root / "tok",
                                               character_coverage=0.99, num_threads=1))
    torch.manual_seed(0)
    mpmr = MPMRForSpanExtraction(MPMRConfig(**_tiny_fields(tokenizer), extractor_size=64))
    mpmr.save_pretrained(root / "mpmr")
    torch.manual_seed(1)
    XLMRobertaModel(XLMRobertaConfig(**_tiny_fields(tokenizer))).save_pretrained(root / "xlmr")
    for name in ("mpmr", "xlmr"):
        tokenizer.save_pretrained(root / name)
    return {"mpmr": root / "mpmr", "xlmr": root / "xlmr"}


def _settings(task: str, **overrides) -> dict:
    return {**BASE, **TRAIN[task], **overrides}


def _pair_task(task: str, recs: list) -> str | None:
    return tasks.pair_task_of(recs) if task == "pair" else None


def _load(task: str, folder: Path, recs: list, seed: int = 0):
    names = standard.label_names(task, recs, _pair_task(task, recs))
    return standard.load_standard_model(task, folder, num_labels=None, label_names=names,
                                        seed=seed)


def _encoder_weight(model) -> torch.Tensor:
    return getattr(model, "roberta", model).encoder.layer[1].attention.self.query.weight


# ---------------------------------------------------------------------------- labels, loading

def test_label_names_and_tags_to_spans(records):
    assert standard.label_names("eqa", records["eqa"]) is None
    assert standard.label_names("ner", records["ner"]) == \
        ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert standard.label_names("absa", []) == standard.iob2_names(("POS", "NEG", "NEU"))
    assert standard.label_names("pair", records["pair"]) == ["0", "1"]
    assert standard.label_names("pair", [], "xnli") == ["entailment", "neutral", "contradiction"]
    tags = ["B-PER", "I-PER", "I-LOC", "O", "I-ORG", "B-ORG", "I-ORG", "O", "B-X"]
    assert standard.spans_from_tags(tags) == [("PER", 0, 1), ("LOC", 2, 2), ("ORG", 4, 4),
                                              ("ORG", 5, 6), ("X", 8, 8)]


@pytest.mark.parametrize("kind", ["mpmr", "xlmr"])
@pytest.mark.parametrize("task", ["eqa", "ner", "pair"])
def test_loads_the_encoder_and_a_seeded_fresh_head(folders, records, kind, task):
    from transformers import XLMRobertaModel

    model, tokenizer = _load(task, folders[kind], records[task], seed=3)
    assert type(model).__name__ == HEADS[task] and tokenizer.is_fast
    encoder = XLMRobertaModel.from_pretrained(folders[kind], add_pooling_layer=False)
    torch.testing.assert_close(_encoder_weight(model), _encoder_weight(encoder), rtol=0, atol=0)
    head = [p for n, p in model.named_parameters() if not n.startswith("roberta.")]
    again = [p for n, p in _load(task, folders[kind], records[task], seed=3)[0].named_parameters()
             if not n.startswith("roberta.")]
    other = [p for n, p in _load(task, folders[kind], records[task], seed=4)[0].named_parameters()
             if not n.startswith("roberta.")]
    assert head and all(torch.equal(a, b) for a, b in zip(head, again))
    assert not all(torch.equal(a, b) for a, b in zip(head, other))
    if task != "eqa":
        assert model.config.id2label[0] == standard.label_names(task, records[task])[0]
    names = standard.label_names(task, records[task])
    changed, _ = standard.load_standard_model(task, folders[kind], num_labels=None,
                                              label_names=names, seed=3, dropout=0.25)
    assert changed.config.hidden_dropout_prob == 0.25
    assert model.config.hidden_dropout_prob == 0.1


def test_load_errors_say_what_to_do(tmp_path, folders, records):
    with pytest.raises(ValueError, match="pass label_names"):
        standard.load_standard_model("ner", folders["xlmr"], num_labels=7, label_names=None,
                                     seed=0)
    with pytest.raises(ValueError, match="num_labels=None, label_names=None"):
        standard.load_standard_model("eqa", folders["xlmr"], num_labels=3, label_names=None,
                                     seed=0)
    with pytest.raises(ValueError, match="as many as num_labels"):
        standard.load_standard_model("pair", folders["xlmr"], num_labels=3,
                                     label_names=["0", "1"], seed=0)
    with pytest.raises(ValueError, match="including 'O'"):
        standard.load_standard_model("ner", folders["xlmr"], num_labels=None,
                                     label_names=["PER", "LOC"], seed=0)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    with pytest.raises(ValueError, match="neither"):
        standard.load_standard_model("eqa", tmp_path, num_labels=None, label_names=None, seed=0)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        standard.load_standard_model("eqa", tmp_path / "nope", num_labels=None, label_names=None,
                                     seed=0)


# ---------------------------------------------------------------------------- encoding

def _context_tokens(tokenizer, text: str) -> list[tuple[int, int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [tuple(o) for o in enc["offset_mapping"]]


@pytest.mark.parametrize("doc_stride", [7, 20])
def test_eqa_windows_start_every_doc_stride_tokens(folders, records, doc_stride):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["xlmr"])
    settings = {"max_seq_len": 48, "doc_stride": doc_stride, "max_query_tokens": 12}
    windows = standard.encode("eqa", records["eqa"], tokenizer, settings, with_targets=True)
    assert [w.record for w in windows] == sorted(w.record for w in windows)
    for k, record in enumerate(records["eqa"]):
        full = _context_tokens(tokenizer, record.context)
        mine = [w for w in windows if w.record == k]
        assert len(mine) > 2  # long contexts, several windows each
        for i, w in enumerate(mine):
            context = [j for j, o in enumerate(w.offsets) if o is not None]
            first = doc_stride * i  # each window starts doc_stride context tokens later
            assert [w.offsets[j] for j in context] == full[first:first + len(context)]
            assert len(w.input_ids) <= 48 and w.input_ids[context[-1] + 1:] == [2]
            assert w.input_ids.index(2) - 1 <= 12  # <s> question (≤ max_query_tokens) </s>
            text, answer_start = record.answers[0]
            answer_end = answer_start + len(text)
            if not (full[first][0] <= answer_start
                    and answer_end <= full[first + len(context) - 1][1]):
                assert w.target == (0, 0)
                continue
            start, end = w.target  # last token starting at or before, first ending at or after
            assert w.offsets[start][0] <= answer_start and w.offsets[end][1] >= answer_end
            assert start == context[-1] or w.offsets[start + 1][0] > answer_start
            assert end == context[0] or w.offsets[end - 1][1] < answer_end
        assert first + len(context) == len(full)  # the last window reaches the end
    assert any(w.target != (0, 0) for w in windows)
    assert {w.input_ids.index(2) - 1 for w in windows} == {12}  # every question was cut


def test_window_steps_that_would_skip_tokens_fail(folders, records):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["xlmr"])
    with pytest.raises(ValueError, match="context window in max_seq_len 48; doc_stride 40"):
        standard.encode("eqa", records["eqa"], tokenizer,
                        {"max_seq_len": 48, "doc_stride": 40, "max_query_tokens": 12})
    with pytest.raises(ValueError, match="doc_stride 30 exceeds the 14-subword window"):
        standard.encode("ner", records["ner"], tokenizer,
                        {"max_seq_len": 16, "doc_stride": 30, "max_query_tokens": 12})


@pytest.mark.parametrize("task", ["eqa", "ner"])
def test_doc_stride_none_cuts_each_input_after_one_window(folders, records, task):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["xlmr"])
    recs = records[task]
    names = standard.label_names(task, recs)
    label2id = {label: i for i, label in enumerate(names or [])}
    cut = {"max_seq_len": 12 if task == "ner" else 48, "doc_stride": None, "max_query_tokens": 12}
    windows = standard.encode(task, recs, tokenizer, cut, with_targets=True, label2id=label2id)
    assert [w.record for w in windows] == list(range(len(recs)))
    windowed = standard.encode(task, recs, tokenizer, {**cut, "doc_stride": 4},
                               with_targets=True, label2id=label2id)
    firsts = [next(w for w in windowed if w.record == k) for k in range(len(recs))]
    assert [(w.input_ids, w.target) for w in windows] == [(w.input_ids, w.target) for w in firsts]
    if task == "ner":  # words past the cut are predicted O
        logits = _oracle(task, windows, len(names))
        predicted = standard.decode(task, recs, windows, logits, id2label=dict(enumerate(names)))
        kept = {(k, word) for k, w in enumerate(windows) for _, word, _ in w.words}
        assert len(kept) < sum(len(r.tokens) for r in recs)
        for k, record in enumerate(recs):
            for start, end, label, _ in predicted[str(k)]:
                words = [i for i, (s, e) in enumerate(record.token_char_spans)
                         if s >= start and e <= end]
                assert all((k, word) in kept for word in words)


@pytest.mark.parametrize("task", ["ner", "absa"])
def test_tags_sit_on_first_subwords_even_in_windows(folders, records, task):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["xlmr"])
    names = standard.label_names(task, records[task])
    label2id = {label: i for i, label in enumerate(names)}
    settings = {"max_seq_len": 12, "doc_stride": 4, "max_query_tokens": 1}
    windows = standard.encode(task, records[task], tokenizer, settings, with_targets=True,
                              label2id=label2id)
    assert len(windows) > 2 * len(records[task])  # sentences split into windows
    for k, record in enumerate(records[task]):
        mine = [w for w in windows if w.record == k]
        seen = set()
        for w in mine:
            pieces = tokenizer.convert_ids_to_tokens(w.input_ids)
            labelled = {pos for pos, t in enumerate(w.target) if t != standard.IGNORE}
            assert labelled == {pos for pos, _, _ in w.words}
            assert all(pieces[pos].startswith("▁") for pos in labelled)
            for pos, word, _ in w.words:
                assert names[w.target[pos]] == record.tags[word]
                seen.add(word)
        assert seen == set(range(len(record.tokens)))


# ---------------------------------------------------------------------------- decoding

def _oracle(task: str, windows, n_labels: int) -> list[np.ndarray]:
    """Logits that put all weight on each window's targets."""
    out = []
    for w in windows:
        if task == "eqa":
            row = np.full((len(w.input_ids), 2), -10.0, dtype=np.float32)
            row[w.target[0], 0] = row[w.target[1], 1] = 10.0
        elif task == "pair":
            row = np.eye(n_labels, dtype=np.float32)[w.target] * 10.0
        else:
            row = np.eye(n_labels, dtype=np.float32)[[max(t, 0) for t in w.target]] * 10.0
        out.append(row)
    return out


@pytest.mark.parametrize("task", ["eqa", "ner", "absa", "pair"])
def test_oracle_logits_decode_to_the_gold_annotations(folders, task):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["xlmr"])
    files = {"eqa": XLU / "xquad" / "xquad.en.json", "ner": XLU / "panx" / "dev-zh.tsv",
             "absa": XLU / "absa" / "gold-es-dev.txt", "pair": XLU / "pawsx" / "test-de.tsv"}
    recs = READERS[task](files[task])[-40 if task == "eqa" else -300:]  # the tokenizer knows
    # English characters only: a zh answer inside an <unk> could not be cut out
    names = standard.label_names(task, recs, _pair_task(task, recs))
    label2id = {label: i for i, label in enumerate(names or [])}
    settings = {"max_seq_len": 24, "doc_stride": 8, "max_query_tokens": 8}
    if task == "eqa":  # windows that hold whole answers
        settings = {"max_seq_len": 96, "doc_stride": 24, "max_query_tokens": 16}
    windows = standard.encode(task, recs, tokenizer, settings, with_targets=True,
                              label2id=label2id)
    predictions = standard.decode(task, recs, windows, _oracle(task, windows, len(label2id)),
                                  id2label=dict(enumerate(names or [])), max_answer_tokens=500)
    assert set(predictions) == {str(r.id if task == "eqa" else r.index) for r in recs}
    scores = SCORERS[task](recs, json.loads(json.dumps(predictions)))
    assert all(v == 100.0 for k, v in scores.items()), scores


@pytest.mark.parametrize("second_context, entities", [(1, [[0, 5, "PER"]]),
                                                     (0, [[0, 1, "PER"], [2, 5, "PER"]])])
def test_each_word_is_read_from_its_max_context_window(second_context, entities):
    sentence = tasks.TaggedSentence(0, ("a", "b", "c"), "a b c", ((0, 1), (2, 3), (4, 5)), (), 1)
    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    # word 1 sits in both windows: position 2 of the first (context 0), 1 of the second
    first = standard.Window(0, [0, 5, 6, 2], words=[(1, 0, 0), (2, 1, 0)])
    second = standard.Window(0, [0, 6, 7, 2], words=[(1, 1, second_context), (2, 2, 0)])
    begin = np.array([[0, 0, 0], [0, 9, 0], [0, 9, 0], [0, 0, 0]], dtype=np.float32)
    inside = np.array([[0, 0, 0], [0, 0, 9], [0, 0, 9], [0, 0, 0]], dtype=np.float32)
    spans = standard.decode("ner", [sentence], [first, second], [begin, inside],
                            id2label=id2label)["0"]
    assert [s[:3] for s in spans] == entities  # from the second: B I I; the first: B B I
    assert all(0.99 < s[3] <= 1.0 for s in spans)


# ---------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def runs(folders, records, tmp_path_factory):
    """task → (model, tokenizer, train log, predictions on the training records, folder);
    each trained once. EQA and NER start from the mPMR folder, ABSA and pairs from XLM-R."""
    done: dict[str, tuple] = {}
    start_from = {"eqa": "mpmr", "ner": "mpmr", "absa": "xlmr", "pair": "xlmr"}

    def get(task: str):
        if task not in done:
            recs = records[task]
            model, tokenizer = _load(task, folders[start_from[task]], recs)
            log: list[dict] = []
            history = standard.fine_tune(task, model, tokenizer, recs, _settings(task),
                                         pair_task=_pair_task(task, recs), device="cpu",
                                         precision="fp32", log=log.append)
            assert history == log
            predictions = standard.predict(task, model, tokenizer, recs, _settings(task),
                                           pair_task=_pair_task(task, recs), device="cpu",
                                           precision="fp32")
            done[task] = (model, tokenizer, history, predictions,
                          tmp_path_factory.mktemp(f"run-{task}"))
        return done[task]

    return get


def _trivial_baseline(task: str, recs: list) -> float:
    """Score of the best constant prediction: majority label (pair), no answer / no spans."""
    if task == "pair":
        labels = [r.label for r in recs]
        return 100.0 * max(labels.count(label) for label in set(labels)) / len(labels)
    return 0.0


@pytest.mark.parametrize("task", ["eqa", "ner", "absa", "pair"])
def test_each_task_learns_and_evaluate_reads_its_predictions(runs, records, data, task):
    _, _, history, predictions, out = runs(task)
    assert {"step", "epoch", "loss", "lr", "seconds"} <= set(history[0])
    assert history[-1]["loss"] < 0.5 * history[0]["loss"], history
    recs = records[task]
    scores = SCORERS[task](recs, predictions)
    headline = scores["f1"] if task != "pair" else scores["accuracy"]
    assert headline > _trivial_baseline(task, recs) + 20, scores
    assert "missing" not in scores and "unknown_ids" not in scores
    pred_file = out / "predictions.json"
    pred_file.write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert evaluate_cli.main(["--task", task, "--gold", str(data[task]),
                                  "--pred", str(pred_file)]) == 0
    assert json.loads(printed.getvalue()) == pytest.approx(scores)


@pytest.mark.parametrize("task", ["eqa", "ner"])
def test_saved_model_reloads_with_the_auto_class(runs, records, task):
    import transformers

    from data_prep.tokenizer import load_tokenizer

    model, tokenizer, _, predictions, out = runs(task)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    auto = {"eqa": transformers.AutoModelForQuestionAnswering,
            "ner": transformers.AutoModelForTokenClassification}[task]
    reloaded = auto.from_pretrained(out / "model")
    assert type(reloaded) is type(model)
    again = standard.predict(task, reloaded, load_tokenizer(out / "model"), records[task],
                             _settings(task), pair_task=None, device="cpu", precision="fp32")
    assert again == predictions


def test_training_is_deterministic_for_a_seed(folders, records):
    def train(seed: int):
        model, tokenizer = _load("ner", folders["xlmr"], records["ner"])
        settings = _settings("ner", epochs=2.0, seed=seed, log_every=1)
        history = standard.fine_tune("ner", model, tokenizer, records["ner"], settings,
                                     pair_task=None, device="cpu", precision="fp32")
        return [h["loss"] for h in history], _encoder_weight(model).detach().clone()

    losses, weight = train(0)
    again, weight_again = train(0)
    other, _ = train(1)
    assert losses == again and torch.equal(weight, weight_again)
    assert losses != other


@pytest.mark.parametrize("task", ["ner", "eqa"])
def test_step_loss_is_hf_heads_loss_whatever_the_grad_accum(folders, records, task):
    """The step loss is what the stock head computes for the whole batch (tagging: mean over
    labelled subwords), and splitting the step changes nothing (dropout off: its masks depend
    on the split)."""
    recs = records[task]
    results = []
    for grad_accum in (1, 2, 4):
        model, tokenizer = _load(task, folders["xlmr"], recs)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        settings = _settings(task, grad_accum=grad_accum, epochs=0.01)  # one step of 8 windows
        if grad_accum == 1:
            windows = standard.encode(task, recs, tokenizer, settings, with_targets=True,
                                      label2id=standard._label2id(task, model, None))
            units = train_loop._units(len(windows), None)
            options = train_loop.TrainOptions(batch_size=8, seed=settings["seed"])
            [[first_step]] = train_loop._step_batches(windows, units, options, 8, 1)
            with torch.no_grad():
                hf_loss = float(model(**standard.collate(task, first_step,
                                                         tokenizer.pad_token_id)).loss)
        history = standard.fine_tune(task, model, tokenizer, recs, settings, pair_task=None,
                                     device="cpu", precision="fp32")
        assert history[-1]["step"] == 1
        results.append((history[0]["loss"], _encoder_weight(model).detach().clone()))
    assert results[0][0] == pytest.approx(hf_loss, rel=1e-5)
    for loss, weight in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5)
        torch.testing.assert_close(weight, results[0][1], rtol=1e-4, atol=1e-6)


def test_fine_tune_rejects_labels_the_head_does_not_know(folders, records):
    model, tokenizer = standard.load_standard_model(
        "ner", folders["xlmr"], num_labels=None, label_names=standard.iob2_names(["PER"]),
        seed=0)
    with pytest.raises(ValueError, match=r"sentence \d+ \(line \d+\) has tags"):
        standard.fine_tune("ner", model, tokenizer, records["ner"], _settings("ner"),
                           pair_task=None, device="cpu", precision="fp32")
    with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
        standard.predict("ner", model, tokenizer, records["ner"],
                         _settings("ner", max_seq_len=512), pair_task=None, device="cpu",
                         precision="fp32")
