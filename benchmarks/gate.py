"""Regression gate of ``make bench``: this run against the committed baseline.

Absolute times on these shared 2-core machines move by tens of percent between back-to-back
runs, so the gate compares *ratios*: in every benchmark group, each of Slipstream's own
benchmarks (``[slipstream]`` / ``_ext`` in the name) is divided by the group's reference
measured in the same run (``reference`` or ``[sortedcontainers]`` in the name), using each
benchmark's minimum time. The run fails when a ratio got worse than the baseline's by more
than the tolerance. Peers and references are reported, never gated.

A benchmark that looks slower is measured again before the gate fails: with several
``--current`` runs, each benchmark's best (lowest) ratio across them counts, so a one-off
hiccup of the shared machine does not fail the build but a real slowdown, present in every
run, does.

Usage: ``python benchmarks/gate.py --baseline BASELINE.json CURRENT.json [CURRENT2.json ...]
[--tolerance 0.5]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _is_ref(name: str) -> bool:
    return "reference" in name or "[sortedcontainers]" in name


def _is_ours(name: str) -> bool:
    return "[slipstream]" in name or name.endswith("_ext") or "_ext[" in name


def ratios(report: dict[str, Any]) -> dict[tuple[str, str], tuple[float, float]]:
    """``(group, name) -> (min seconds, min / reference min)`` for Slipstream's benchmarks."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for b in report["benchmarks"]:
        by_group.setdefault(b["group"] or "", []).append(b)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for group, items in by_group.items():
        refs = [b for b in items if _is_ref(b["name"])]
        if not refs:
            continue
        ref = min(refs, key=lambda b: b["stats"]["min"])["stats"]["min"]
        for b in items:
            if _is_ours(b["name"]):
                out[(group, b["name"])] = (b["stats"]["min"], b["stats"]["min"] / ref)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; exit 1 on a regression beyond the tolerance."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("current", type=Path, nargs="+", help="this run's --benchmark-json file(s)")
    ap.add_argument("--baseline", type=Path, required=True)
    ap.add_argument("--tolerance", type=float, default=0.5)
    args = ap.parse_args(argv)
    now: dict[tuple[str, str], tuple[float, float]] = {}
    for path in args.current:
        for key, value in ratios(json.loads(path.read_text())).items():
            if key not in now or value[1] < now[key][1]:
                now[key] = value
    base = ratios(json.loads(args.baseline.read_text()))
    failed = 0
    print(f"{'benchmark':60s} {'ratio base':>10s} {'ratio now':>10s} {'change':>8s}")
    for key in sorted(now):
        _, r = now[key]
        if key not in base:
            print(f"{key[1][:60]:60s} {'-':>10s} {r:10.4f} {'new':>8s}")
            continue
        change = r / base[key][1] - 1.0
        bad = change > args.tolerance
        failed += bad
        flag = "  REGRESSION" if bad else ""
        print(f"{key[1][:60]:60s} {base[key][1]:10.4f} {r:10.4f} {change:+8.1%}{flag}")
    for key in sorted(set(base) - set(now)):
        print(f"{key[1][:60]:60s} missing from this run")
    if failed:
        print(
            f"gate: {failed} benchmark(s) slower than baseline by more than "
            f"{args.tolerance:.0%} relative to their same-run reference",
            file=sys.stderr,
        )
        return 1
    print(f"gate: {len(now)} benchmark(s) within {args.tolerance:.0%} of the baseline ratios")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
