"""Smoke test of `bench/data_prep.py --scale` at one toy size: the table prints a row for one
worker and one for all cores, and the growth and check lines follow. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.paths import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_data_prep", REPO / "bench/data_prep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_scale_bench_prints_both_worker_rows(tmp_path, capsys):
    pytest.importorskip("psutil")
    rows_file = tmp_path / "rows.json"
    assert _bench().main(["--scale", "--sizes", "300", "--workers", "2", "--work",
                          str(tmp_path / "work"), "--json", str(rows_file)]) == 0
    printed = capsys.readouterr().out
    table = [line.split() for line in printed.splitlines() if line.startswith("     300")]
    assert [row[:2] for row in table] == [["300", "1"], ["300", "2"]]
    assert "growth exponent of time in N, W=1" in printed and "check N=300 W=2" in printed
    rows = json.loads(rows_file.read_text())
    assert [r["workers"] for r in rows] == [1, 2]
    assert all(r["examples"] > 0 and r["peak_mb"] > 0 and r["text_mb"] > 0 for r in rows)
    assert rows[0]["examples"] == rows[1]["examples"]
