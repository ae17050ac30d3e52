"""Register the schemas with Hydra and turn a composed config into frozen objects.

OmegaConf marks a node built from a ``frozen=True`` dataclass read-only, and Hydra then
cannot merge YAML or command-line overrides into it. So Hydra's ConfigStore receives a
mutable *twin* of each frozen schema (same fields, same types, same defaults), validation
happens there, and :func:`load_config` rebuilds the frozen originals from the result.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.config import schema
from orchestrator.config.env import supported_exchanges
from orchestrator.config.secrets import redact_url
from orchestrator.errors import ConfigError, SlipstreamError

__all__ = ["load_config", "register_configs", "thaw", "validate"]

_TWINS: dict[type, type] = {}
_ORIGINALS: dict[type, type] = {}


def _thaw_type(tp: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return thaw(tp)
    origin = typing.get_origin(tp)
    if origin is None:
        return tp
    args = tuple(_thaw_type(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return origin[args]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return typing.Union[args]  # noqa: UP007 - rebuilt from parts
    return tp


def thaw(cls: type) -> type:
    """Return the mutable twin of frozen dataclass ``cls`` (built once, then cached).

    Parameters
    ----------
    cls : type
        A frozen dataclass from :mod:`orchestrator.config.schema`.

    Returns
    -------
    type
        A non-frozen dataclass with the same name, fields, types and defaults.
    """
    if cls in _TWINS:
        return _TWINS[cls]
    hints = typing.get_type_hints(cls)
    specs: list[tuple[str, Any, Any]] = []
    for f in dataclasses.fields(cls):
        tp = _thaw_type(hints[f.name])
        if f.default_factory is not dataclasses.MISSING:
            factory: Any = f.default_factory
            if isinstance(factory, type) and dataclasses.is_dataclass(factory):
                factory = thaw(factory)
            spec = dataclasses.field(default_factory=factory)
        else:
            spec = dataclasses.field(default=f.default)
        specs.append((f.name, tp, spec))
    twin = dataclasses.make_dataclass(cls.__name__, specs, frozen=False)
    twin.__module__ = cls.__module__
    twin.__qualname__ = f"{cls.__qualname__}Twin"
    _TWINS[cls] = twin
    _ORIGINALS[twin] = cls
    return twin


def _freeze(value: Any) -> Any:
    original = _ORIGINALS.get(type(value))
    if original is not None:
        return original(
            **{f.name: _freeze(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    if isinstance(value, list):
        return [_freeze(v) for v in value]
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def register_configs(cs: ConfigStore | None = None) -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent).

    ``base_config`` is the root schema (first in ``conf/config.yaml``'s defaults list);
    ``strategy/momentum_schema`` is pulled in by ``conf/strategy/momentum.yaml``.
    """
    store = cs or ConfigStore.instance()
    store.store(name="base_config", node=thaw(schema.AppConfig), provider="slipstream")
    store.store(
        group="strategy",
        name="momentum_schema",
        node=thaw(schema.MomentumConfig),
        provider="slipstream",
    )


def load_config(cfg: DictConfig | Mapping[str, Any]) -> schema.AppConfig:
    """Resolve, type-check and validate a composed config into a frozen :class:`AppConfig`.

    Parameters
    ----------
    cfg : DictConfig
        The config Hydra composed (``hydra`` node, if present, is ignored).

    Returns
    -------
    AppConfig
        Frozen, fully resolved configuration.

    Raises
    ------
    ConfigError
        Naming the key and value at fault (missing value, wrong type, unsupported
        exchange, live trading without opt-in, ...).
    """
    # Re-check from plain data: ``+key=value`` overrides are appended with the struct
    # flag off, so a composed DictConfig may carry keys no schema declares.
    data = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    assert isinstance(data, dict)
    data.pop("hydra", None)
    strategy = data.pop("strategy", None)
    try:
        node = OmegaConf.merge(OmegaConf.structured(thaw(schema.AppConfig)), data)
        node.strategy = _strategy_node(strategy)
        obj = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise ConfigError(_omegaconf_message(exc)) from None
    frozen = _freeze(obj)
    validate(frozen)
    return typing.cast(schema.AppConfig, frozen)


def _strategy_node(data: Any) -> DictConfig:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        raise ConfigError("strategy must be selected (strategy=<name>) and have a name")
    name = data["name"]
    cls = schema.STRATEGY_SCHEMAS.get(name)
    if cls is None:
        known = ", ".join(sorted(schema.STRATEGY_SCHEMAS))
        raise ConfigError(f"strategy.name '{name}' has no schema; known: {known}")
    try:
        node = OmegaConf.merge(OmegaConf.structured(thaw(cls)), dict(data))
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        exc.full_key = f"strategy.{key}" if key else "strategy"
        raise ConfigError(_omegaconf_message(exc)) from None
    assert isinstance(node, DictConfig)
    return node


def _omegaconf_message(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"invalid config at '{key}': {msg}" if key else f"invalid config: {msg}"


_URL_SCHEMES = {
    "redis_url": ("redis", "rediss", "unix"),
    "database_url": ("postgresql", "postgres"),
    "celery_broker_url": ("redis", "rediss", "amqp", "amqps", "memory"),
    "celery_result_backend": ("redis", "rediss", "db+postgresql", "cache+memory", "rpc"),
}


def validate(cfg: schema.AppConfig) -> None:
    """Check the rules that types alone cannot express; raise :class:`ConfigError`."""
    supported = supported_exchanges()
    schemes: tuple[str, ...]
    for key, ex in cfg.exchanges.items():
        if key not in supported:
            raise ConfigError(
                f"exchange '{key}' is not in SUPPORTED_EXCHANGES "
                f"({', '.join(sorted(supported)) or 'empty'})"
            )
        if ex.name != key:
            raise ConfigError(f"exchanges.{key}.name must be '{key}', was '{ex.name}'")
        if not ex.symbols:
            raise ConfigError(f"exchanges.{key}.symbols is empty: name at least one symbol")
        for attr, schemes in (("ws_url", ("ws", "wss")), ("rest_url", ("http", "https"))):
            url = getattr(ex, attr)
            if url.split("://", 1)[0] not in schemes:
                raise ConfigError(
                    f"exchanges.{key}.{attr} must start with "
                    f"{' or '.join(s + '://' for s in schemes)}, was '{redact_url(url)}'"
                )
    for attr, schemes in _URL_SCHEMES.items():
        url = getattr(cfg.services, attr)
        if url.split("://", 1)[0] not in schemes:
            raise ConfigError(
                f"services.{attr} must use one of {', '.join(schemes)}, was '{redact_url(url)}'"
            )
    if cfg.mode.name is schema.RunMode.live and not cfg.mode.confirm_live:
        raise ConfigError(
            "mode=live sends real orders: add mode.confirm_live=true to opt in "
            "(paper trading is mode=paper)"
        )
    if cfg.duration is not None and cfg.duration <= 0:
        raise ConfigError(f"duration must be positive seconds, was {cfg.duration}")
    if cfg.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, was {cfg.log_level!r}")
    pub = cfg.publish
    if pub.delta_capacity < 1024:
        raise ConfigError(
            f"publish.delta_capacity must be at least 1024 records, was {pub.delta_capacity}"
        )
    if pub.snapshot_interval is not None and pub.snapshot_interval <= 0:
        raise ConfigError(
            "publish.snapshot_interval must be positive seconds or null, "
            f"was {pub.snapshot_interval}"
        )
    from orchestrator.data.archive import archive_settings

    try:
        archive_settings(cfg.archive)
    except (TypeError, ValueError, SlipstreamError) as exc:
        raise ConfigError(f"archive.{exc}") from None
