"""Environment: ``.env`` loading, endpoint overrides and ``SUPPORTED_EXCHANGES``.

Endpoints in ``conf/config.yaml`` are written ``${endpoint:REDIS_URL,redis://...}``: the
environment variable wins when set (and non-empty), the literal is the default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import OmegaConf

from orchestrator.config.secrets import dump_mode, redact_url
from orchestrator.errors import ConfigError

__all__ = [
    "ALL_EXCHANGES",
    "load_dotenv",
    "register_resolvers",
    "supported_exchanges",
]

#: Every exchange option shipped in ``conf/exchange/``.
ALL_EXCHANGES: tuple[str, ...] = ("binance", "binance_usdm", "okx", "okx_swap")

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return inner.encode().decode("unicode_escape") if raw[0] == '"' else inner
    return raw.split(" #", 1)[0].rstrip()


def load_dotenv(path: str | os.PathLike[str] = ".env", *, override: bool = False) -> list[str]:
    """Read ``KEY=VALUE`` lines from ``path`` into ``os.environ``.

    Variables already set in the environment win unless ``override`` is true. Blank lines,
    ``#`` comments and an ``export`` prefix are accepted; values may be quoted.

    Parameters
    ----------
    path : path-like
        The file; a missing file is not an error.
    override : bool
        Replace variables that are already set.

    Returns
    -------
    list of str
        Names of the variables that were set (never their values).

    Raises
    ------
    ConfigError
        On a line that is not ``KEY=VALUE`` (the message gives the line number only).
    """
    p = Path(path)
    if not p.is_file():
        return []
    names: list[str] = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise ConfigError(f"{p}:{lineno}: expected KEY=VALUE")
        key, value = m.group(1), _unquote(m.group(2))
        if override or key not in os.environ:
            os.environ[key] = value
            names.append(key)
    return names


def supported_exchanges() -> frozenset[str]:
    """Exchanges allowed by ``SUPPORTED_EXCHANGES`` (comma-separated; default: all shipped).

    Raises
    ------
    ConfigError
        If the variable names an exchange Slipstream does not ship.
    """
    raw = os.environ.get("SUPPORTED_EXCHANGES", "").strip()
    if not raw:
        return frozenset(ALL_EXCHANGES)
    names = {n.strip() for n in raw.split(",") if n.strip()}
    unknown = names.difference(ALL_EXCHANGES)
    if unknown:
        raise ConfigError(
            f"SUPPORTED_EXCHANGES names unknown exchange(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(ALL_EXCHANGES)}"
        )
    return frozenset(names)


def _endpoint(var: str, default: str) -> str:
    value = os.environ.get(var, "").strip() or default
    return redact_url(value) if dump_mode() else value


def register_resolvers() -> None:
    """Register the ``endpoint`` resolver with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("endpoint"):
        OmegaConf.register_new_resolver("endpoint", _endpoint)
