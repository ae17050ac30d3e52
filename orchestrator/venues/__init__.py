"""Venue adapters: one folder per exchange option, each declaring ``SPEC`` (a VenueSpec)."""

from __future__ import annotations

import importlib

from orchestrator.config.env import ALL_EXCHANGES, supported_exchanges
from orchestrator.errors import ConfigError
from orchestrator.venues.base import VenueSpec

__all__ = ["get_venue"]


def get_venue(name: str) -> VenueSpec:
    """Return the adapter of exchange option ``name``.

    Raises
    ------
    ConfigError
        If ``name`` is not shipped or not allowed by ``SUPPORTED_EXCHANGES``.
    """
    if name not in ALL_EXCHANGES:
        raise ConfigError(f"unknown exchange {name!r}; shipped: {', '.join(sorted(ALL_EXCHANGES))}")
    if name not in supported_exchanges():
        raise ConfigError(f"exchange {name!r} is not in SUPPORTED_EXCHANGES")
    spec = importlib.import_module(f"orchestrator.venues.{name}").SPEC
    if not isinstance(spec, VenueSpec):  # pragma: no cover - a broken adapter folder
        raise ConfigError(f"orchestrator.venues.{name}.SPEC is not a VenueSpec")
    return spec
