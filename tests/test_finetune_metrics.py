"""finetune.metrics / finetune.evaluate: hand-computed scores, real-data sanity, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.evaluate import evaluate, main
from finetune.metrics import (
    absa_scores,
    eqa_scores,
    f1_score,
    flatten_spans,
    ner_scores,
    normalize_answer,
    pair_accuracy,
)
from finetune.tasks import QAExample, read_absa, read_ner, read_pair, read_squad
from paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
XLU = SHARED_DATA / "xlu"
needs_xlu = pytest.mark.skipif(not XLU.is_dir(), reason="shared XLU samples not available")


def qa(qid: str, *answers: str) -> QAExample:
    return QAExample(qid, "?", " ".join(answers), tuple((a, 0) for a in answers))


# ---------------------------------------------------------------------------- SQuAD v1.1 / MLQA

def test_squad_v11_hand_computed():
    gold = [qa("q1", "Eiffel tower"), qa("q2", "Paris"), qa("q3", "the"),
            qa("q4", "New York", "York City Hall"), qa("q5", "missing")]
    predictions = {
        "q1": "the Eiffel Tower!",  # → "eiffel tower": EM 1, F1 1
        "q2": "in Paris France",    # 1 common of 3 predicted / 1 gold: P 1/3, R 1 → F1 0.5
        "q3": "a",                  # both normalise to "": EM 1 but F1 0 (no common token)
        "q4": "New York City",      # vs "new york": P 2/3, R 1 → 0.8; vs "york city hall": 2/3
    }                               # q5 has no prediction: 0 / 0
    scores = eqa_scores(gold, predictions)
    assert scores["exact_match"] == 100.0 * 2 / 5
    assert scores["f1"] == pytest.approx(100.0 * (1 + 0.5 + 0 + 0.8) / 5, abs=1e-12)
    assert scores["missing"] == 1
    assert "unknown_ids" not in scores


def test_unknown_prediction_ids_are_reported():
    scores = eqa_scores([qa("q1", "x")], {"q1": "x", "zz": "y", "aa": "z"})
    assert scores == {"exact_match": 100.0, "f1": 100.0, "unknown_ids": ["aa", "zz"]}


@pytest.mark.parametrize("prediction, truth, lang, f1", [
    ("«Paris»", "Paris", None, 0.0),          # v1.1 strips ASCII punctuation only
    ("«Paris»", "Paris", "en", 1.0),          # MLQA strips every Unicode P* character
    ("la casa", "casa", None, 2 / 3),         # v1.1: [la, casa] vs [casa] → P 1/2, R 1
    ("la casa", "casa", "es", 1.0),           # "la" is a Spanish article
    ("der Hund", "Hund", "de", 1.0),
    ("những con mèo", "con mèo", "vi", 1.0),
    ("البيت", "بيت", "ar", 1.0),              # every "ال" becomes a space
    ("北京大学", "北京", None, 0.0),           # v1.1: one token each, different
    ("北京大学", "北京", "zh", 2 / 3),         # mixed segmentation: [北 京 大 学] vs [北 京]
    ("2008年北京 Olympics", "北京 olympics", "zh", 0.75),  # [2008 年 北 京 olympics]: P 3/5, R 1
])
def test_mlqa_normalisation_hand_computed(prediction, truth, lang, f1):
    assert f1_score(prediction, truth, lang) == pytest.approx(f1, abs=1e-12)


def test_mlqa_normalisation_details():
    assert normalize_answer("مال", "ar") == "م"  # "ال" is removed anywhere, as the script does
    assert normalize_answer("A, the  B。", None) == "b。"
    assert normalize_answer("A, the  B。", "en") == "b"
    assert normalize_answer("ABC漢字def", "zh") == "abc 漢 字 def"
    assert normalize_answer("Los gatos", "hi") == "los gatos"  # no Hindi articles
    with pytest.raises(ValueError, match="leave the language out"):
        normalize_answer("x", "th")


@needs_xlu
def test_xquad_gold_as_predictions_and_first_words():
    gold = read_squad(XLU / "xquad" / "xquad.en.json")
    perfect = eqa_scores(gold, {e.id: e.answers[0][0] for e in gold})
    assert perfect == {"exact_match": 100.0, "f1": 100.0}
    first_words = eqa_scores(gold, {e.id: e.answers[0][0].split()[0] for e in gold})
    assert 0 < first_words["exact_match"] < first_words["f1"] < 100


# ---------------------------------------------------------------------------- NER / ABSA

NER_FILE = "John\tB-PER\nlives\tO\nin\tO\nNew\tB-LOC\nYork\tI-LOC\nCity\tI-LOC\n\n" \
           "Apple\tB-ORG\nhired\tO\nTim\tB-PER\nCook\tI-PER\n"
# text 0: "John lives in New York City": John 0-4, lives 5-10, New 14-17, York 18-22, City 23-27
# text 1: "Apple hired Tim Cook": Apple 0-5, Tim 12-15, Cook 16-20


def test_ner_seqeval_hand_computed(tmp_path):
    path = tmp_path / "ner.tsv"
    path.write_text(NER_FILE, encoding="utf-8")
    gold = read_ner(path)
    predictions = {
        "0": [[0, 4, "PER"], [5, 10, "PER"], [14, 22, "LOC"]],  # John ✓, lives ✗, New York ✗
        "1": [[0, 5, "ORG"], [12, 20, "ORG"]],                  # Apple ✓, Tim Cook wrong type
    }
    # 5 predicted, 4 gold, 2 correct: P 2/5, R 2/4, F1 = 2·0.4·0.5/0.9 = 4/9
    scores = ner_scores(gold, predictions)
    assert scores["precision"] == pytest.approx(40.0)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(400 / 9)


def test_ner_overlaps_are_flattened_and_spans_snap_to_tokens(tmp_path):
    path = tmp_path / "ner.tsv"
    path.write_text(NER_FILE, encoding="utf-8")
    gold = read_ner(path)
    predictions = {
        0: [[0, 3, "PER", 2.0],                               # "Joh" snaps to "John" ✓
            [14, 27, "LOC", 5.0], [18, 22, "ORG", 9.0]],      # nested: higher score wins
        "1": [[0, 5, "ORG"], [12, 20, "PER"]],
    }
    # kept: John PER ✓, York ORG ✗ (beats New York City), Apple ✓, Tim Cook ✓ → P 3/4, R 3/4
    assert ner_scores(gold, predictions)["f1"] == pytest.approx(75.0)
    assert flatten_spans([[0, 5, "A"], [3, 9, "B"], [9, 10, "C"]]) == [[3, 9, "B"],
                                                                       [9, 10, "C"]]


def test_ner_bad_prediction_spans_raise(tmp_path):
    path = tmp_path / "ner.tsv"
    path.write_text(NER_FILE, encoding="utf-8")
    gold = read_ner(path)
    with pytest.raises(ValueError, match="sentence 1: span"):
        ner_scores(gold, {"1": [[5, 99, "PER"]]})
    with pytest.raises(ValueError, match="sentence 0: expected"):
        ner_scores(gold, {"0": [[1, 2]]})


def test_absa_span_f1_hand_computed(tmp_path):
    path = tmp_path / "absa.txt"
    path.write_text("The\tO\tNIL\nfish\tT-POS\tF\nchips\tT-POS\tF\nwere\tO\tNIL\ncold\tO\tNIL\n\n"
                    "bad\tO\tNIL\nservice\tT-NEG\tS\n", encoding="utf-8")
    gold = read_absa(path)  # "fish chips" POS (4-14); "service" NEG (4-11)
    predictions = {"0": [[4, 14, "POS"], [4, 8, "POS"]],  # ✓, partial ✗
                   "1": [[4, 11, "NEU"]]}                  # wrong polarity
    scores = absa_scores(gold, predictions)  # 3 predicted, 2 gold, 1 hit
    assert scores["precision"] == pytest.approx(100 / 3)
    assert scores["recall"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(40.0)  # 2·(1/3)·(1/2)/(5/6)
    smoothed = absa_scores(gold, predictions, xabsa_smoothing=True)
    assert smoothed["f1"] < scores["f1"]
    assert smoothed["f1"] == pytest.approx(40.0, abs=0.01)


def test_pair_accuracy(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("a\tb\t1\nc\td\t0\ne\tf\t0\ng\th\t1\n", encoding="utf-8")
    gold = read_pair(path)
    scores = pair_accuracy(gold, {"0": "1", "1": 1, "2": "0", "7": "0"})
    assert scores == {"accuracy": 50.0, "unknown_ids": ["7"], "missing": 1}


# ---------------------------------------------------------------------------- CLI

def test_evaluate_function_and_main(tmp_path, capsys):
    gold = tmp_path / "ner.tsv"
    gold.write_text(NER_FILE, encoding="utf-8")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"0": [[0, 4, "PER"], [14, 27, "LOC"]],
                                "1": [[0, 5, "ORG"], [12, 20, "PER"]], "9": []}),
                    encoding="utf-8")
    assert evaluate("ner", gold, pred)["f1"] == pytest.approx(100.0)
    assert main(["--task", "ner", "--gold", str(gold), "--pred", str(pred)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"precision": 100.0, "recall": 100.0, "f1": 100.0,
                               "unknown_ids": ["9"]}
    assert "1 prediction ids match no record" in err and ": 9" in err

    gold.write_text("John\tB-PER\nlives\n", encoding="utf-8")
    assert main(["--task", "ner", "--gold", str(gold), "--pred", str(pred)]) == 2
    assert f"{gold}:2: expected" in capsys.readouterr().err
    assert main(["--task", "pair", "--gold", str(gold), "--pred", str(pred),
                 "--lang", "en"]) == 2
    assert "--lang applies to --task eqa only" in capsys.readouterr().err


@needs_xlu
def test_cli_subprocess_eqa_mlqa(tmp_path):
    gold = XLU / "xquad" / "xquad.zh.json"
    examples = read_squad(gold)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({e.id: e.answers[0][0] for e in examples[:595]} | {"x1": "?"},
                               ensure_ascii=False), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "finetune.evaluate", "--task", "eqa", "--gold",
                          str(gold), "--pred", str(pred), "--lang", "zh"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"exact_match": 50.0, "f1": 50.0, "unknown_ids": ["x1"],
                                      "missing": 595}
    assert "x1" in run.stderr and "595 records" in run.stderr
