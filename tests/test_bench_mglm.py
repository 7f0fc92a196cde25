"""Smoke test of bench/mglm_step.py at toy sizes: both sections run, the sep attentions give the
dense mask's loss, and KV-cache decoding reproduces recomputation (the bench asserts it). No
timing is asserted."""

from __future__ import annotations

import importlib.util

from tests.paths import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_mglm_step", REPO / "bench/mglm_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mglm_step_bench_runs_and_agrees(capsys):
    out = _bench().main(["--size", "tiny", "--device", "cpu", "--seq", "48", "--batch", "2",
                         "--steps", "3", "--rounds", "1", "--prompt", "12", "--new-tokens", "6"])
    printed = capsys.readouterr().out
    assert out["same_loss"] and set(out["train"]) == {"sdpa", "dense"}
    assert abs(out["losses"]["sdpa"] - out["losses"]["dense"]) < 1e-4
    assert all(row["tokens_per_s"] > 0 and row["mfu"] is None for row in out["train"].values())
    assert set(out["generation"]) == {"no cache", "KV cache"}
    assert len(out["tokens"]) == 2 and all(len(row) == 6 for row in out["tokens"])
    assert "1. training step" in printed and "with and without the cache: yes" in printed
