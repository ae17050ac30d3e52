"""Slipstream's error tree: one root, shallow branches, messages that name the bad value."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ServiceUnavailableError",
    "SlipstreamError",
]


class SlipstreamError(Exception):
    """Root of every error Slipstream raises on purpose."""


class ConfigError(SlipstreamError):
    """The composed configuration is invalid (unknown key, wrong type, bad value)."""


class ServiceUnavailableError(SlipstreamError):
    """A required service (Redis, PostgreSQL, a broker) cannot be reached."""
