"""Configuration: frozen schemas, Hydra registration, environment and secrets."""

from __future__ import annotations

from orchestrator.config.env import (
    ALL_EXCHANGES,
    load_dotenv,
    register_resolvers,
    supported_exchanges,
)
from orchestrator.config.schema import (
    AppConfig,
    ExchangeConfig,
    ModeConfig,
    MomentumConfig,
    ProfileConfig,
    ServicesConfig,
)
from orchestrator.config.store import load_config, register_configs

__all__ = [
    "ALL_EXCHANGES",
    "AppConfig",
    "ExchangeConfig",
    "ModeConfig",
    "MomentumConfig",
    "ProfileConfig",
    "ServicesConfig",
    "load_config",
    "load_dotenv",
    "register_configs",
    "register_resolvers",
    "setup",
    "supported_exchanges",
]


def setup() -> None:
    """Register resolvers and schemas; call once before Hydra composes."""
    register_resolvers()
    register_configs()
