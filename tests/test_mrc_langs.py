"""`wiki-mrc --langs`: every language of a dump folder in one command, ROOT/manifest.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data_prep", "wiki-mrc", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> tuple[Path, Path]:
    from data_prep.synth import write_synthetic_wiki
    from data_prep.tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("dumps")
    paths = write_synthetic_wiki(folder, ["en", "de"], articles_per_lang=40)
    tok = train_tokenizer(paths, vocab_size=2000, out_dir=tmp_path_factory.mktemp("tok"))
    return folder, tok


def test_all_languages_in_one_command(dumps, tmp_path):
    folder, tok = dumps
    root = tmp_path / "mrc"
    args = ["--input", str(folder), "--langs", "all", "--tokenizer", str(tok), "--out", str(root),
            "--no-progress", "--entities-per-unit", "4"]
    run = _cli(*args)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["kind"] == "languages" and manifest["complete"]
    assert sorted(manifest["languages"]) == ["de", "en"]
    for lang, row in manifest["languages"].items():
        built = json.loads((root / lang / "manifest.json").read_text())
        assert row["examples"] == built["counts"]["examples"] > 0
        assert row["entities"] == built["reading"]["entities_selected"] > 0
        assert built["params"]["lang"] == lang and built["params"]["min_mentions"] == \
            (10 if lang == "en" else 5)  # the per-language default
    assert manifest["total"]["examples"] == sum(r["examples"] for r in manifest["languages"].values())
    assert "[2/2]" in run.stderr and "ETA" in run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1])["examples"] == manifest["total"]["examples"]

    # rerunning continues: finished languages are skipped; an interrupted one is resumed
    (root / "de" / "manifest.json").unlink()
    (root / "de" / ".work").mkdir()
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert "en: already built" in again.stderr and "de: built" in again.stderr
    assert json.loads((root / "manifest.json").read_text())["total"] == manifest["total"]

    # the root is a data.paths entry for training: its manifest is no data folder's
    from pretrain.config import DataConfig, data_folders

    assert data_folders(DataConfig(paths=[str(root)])) == [root / "de", root / "en"]


@pytest.mark.parametrize("langs, message", [("en,fr", "no dump found for fr"),
                                            ("en,xx", "supported are")])
def test_missing_or_unknown_language_fails_before_building(dumps, tmp_path, langs, message):
    folder, tok = dumps
    run = _cli("--input", str(folder), "--langs", langs, "--tokenizer", str(tok),
               "--out", str(tmp_path / "mrc"))
    assert run.returncode == 2 and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mrc" / "en").exists()


def test_lang_and_langs_are_exclusive(dumps, tmp_path):
    folder, tok = dumps
    run = _cli("--input", str(folder), "--tokenizer", str(tok), "--out", str(tmp_path / "o"))
    assert run.returncode == 2 and "--langs" in run.stderr
