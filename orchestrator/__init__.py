"""Slipstream orchestrator: the thin Python layer around the compiled ``ext`` hot path.

It composes configuration with Hydra (``conf/``), connects to exchanges, Redis,
Celery and PostgreSQL/TimescaleDB, and hands whole frames and arrays to ``ext``.
"""

from __future__ import annotations

from orchestrator.errors import ConfigError, SlipstreamError

__all__ = ["ConfigError", "SlipstreamError", "__version__"]

__version__ = "0.1.0"
