"""Signals tooling around the compiled indicators, slippage models and wall detection."""
