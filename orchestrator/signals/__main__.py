"""``python -m orchestrator.signals slippage-eval CAPTURE...``: slippage model vs book walk.

Replays one capture session, places virtual market orders and prints a JSON report of
the plain walk-at-decision-time predictor and the slippage model, both scored out of
sample (see :mod:`orchestrator.signals.slippage_eval` and ``docs/slippage_model.md``).

Exit status: 0 report printed, 2 bad arguments or a file that cannot be read, parsed or
evaluated (one-line message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ext.feed import FrameError
from orchestrator.capture.records import CaptureFormatError
from orchestrator.signals.slippage_eval import (
    EvalConfig,
    SlippageEvalError,
    SlippageModelStore,
    evaluate_files,
    parse_sizes,
)

__all__ = ["main"]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, was {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the signals command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.signals")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser(
        "slippage-eval",
        help="replay captures; score walk-at-t and the slippage model out of sample (JSON)",
    )
    ev.add_argument("files", nargs="+", help="capture files of one session")
    ev.add_argument(
        "--latency-ms",
        type=_positive_float,
        required=True,
        help="decision-to-fill latency: orders fill against the book at t + latency",
    )
    ev.add_argument(
        "--sizes",
        required=True,
        help="order sizes, comma separated: base quantity (0.5) or multiple of top size (2x)",
    )
    ev.add_argument("--train-fraction", type=float, default=0.6, help="default: 0.6")
    ev.add_argument("--seed", type=int, default=0, help="decision-time jitter seed")
    ev.add_argument("--sample-every-ms", type=_positive_float, default=250.0, help="default: 250")
    ev.add_argument("--fee-bps", type=float, default=0.0, help="taker fee added to costs")
    ev.add_argument(
        "--min-fold-gain",
        type=float,
        default=0.005,
        help="keep the walk unless the model cuts its MAE by this fraction in every "
        "validation fold of the training part (default: 0.005)",
    )
    ev.add_argument(
        "--no-book-ticker",
        action="store_true",
        help="ignore bookTicker frames (ablation: features from the depth book only)",
    )
    ev.add_argument("--model-out", metavar="DIR", help="save the fitted models here")
    ev.add_argument("--compact", action="store_true", help="one-line JSON")
    args = parser.parse_args(argv)
    try:
        cfg = EvalConfig(
            latency_ms=args.latency_ms,
            sizes=parse_sizes(args.sizes),
            train_fraction=args.train_fraction,
            seed=args.seed,
            sample_every_ms=args.sample_every_ms,
            fee_bps=args.fee_bps,
            min_fold_gain=args.min_fold_gain,
            use_book_ticker=not args.no_book_ticker,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report, models = evaluate_files(args.files, cfg)
        if args.model_out:
            paths = SlippageModelStore(args.model_out).save_all(models)
            report["models_saved"] = [str(p) for p in paths]
    except (CaptureFormatError, FrameError, SlippageEvalError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=None if args.compact else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
