"""The benchmark regression gate (benchmarks/gate.py) fails on a real slowdown only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

GATE = Path(__file__).resolve().parents[1] / "benchmarks" / "gate.py"
spec = importlib.util.spec_from_file_location("bench_gate", GATE)
assert spec is not None and spec.loader is not None
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


def report(ours: float, ref: float, peer: float = 1.0) -> dict:
    def b(name: str, t: float) -> dict:
        return {"group": "g", "name": name, "stats": {"min": t}}

    return {
        "benchmarks": [
            b("test_x[slipstream]", ours),
            b("test_x[sortedcontainers]", ref),
            b("test_x[order-book]", peer),
        ]
    }


def run(tmp_path: Path, now: dict, base: dict) -> int:
    (tmp_path / "now.json").write_text(json.dumps(now))
    (tmp_path / "base.json").write_text(json.dumps(base))
    return gate.main([str(tmp_path / "now.json"), "--baseline", str(tmp_path / "base.json")])


def test_machine_twice_as_slow_everywhere_passes(tmp_path):
    assert run(tmp_path, report(2.0, 20.0), report(1.0, 10.0)) == 0


def test_our_code_twice_as_slow_fails(tmp_path, capsys):
    assert run(tmp_path, report(2.0, 10.0), report(1.0, 10.0)) == 1
    assert "REGRESSION" in capsys.readouterr().out


def test_peer_slowdown_is_not_gated(tmp_path):
    assert run(tmp_path, report(1.0, 10.0, peer=5.0), report(1.0, 10.0)) == 0


def test_within_tolerance_passes(tmp_path):
    assert run(tmp_path, report(1.4, 10.0), report(1.0, 10.0)) == 0


def test_best_of_several_runs_counts(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(report(3.0, 10.0)))  # a hiccup
    (tmp_path / "b.json").write_text(json.dumps(report(1.1, 10.0)))
    (tmp_path / "base.json").write_text(json.dumps(report(1.0, 10.0)))
    args = [str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--baseline"]
    assert gate.main([*args, str(tmp_path / "base.json")]) == 0
    (tmp_path / "b.json").write_text(json.dumps(report(2.5, 10.0)))  # slow every time
    assert gate.main([*args, str(tmp_path / "base.json")]) == 1
