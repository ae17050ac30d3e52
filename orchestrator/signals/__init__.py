"""Signals tooling around the compiled indicators, slippage models and wall detection.

``python -m orchestrator.signals slippage-eval CAPTURE...`` scores the slippage model
(:class:`ext.predict.SlippageModel`) against the plain book walk out of sample on recorded
captures; see :mod:`orchestrator.signals.slippage_eval` and ``docs/slippage_model.md``.
"""
