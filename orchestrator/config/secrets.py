"""Secrets: read from the environment only, never logged, never in a config dump.

An exchange's config names the variables (``OKX_API_KEY``); :func:`read_secret` reads
``OKX_API_KEY`` or, if unset, the file named by ``OKX_API_KEY_FILE``. Values come back as
:class:`Secret`, whose ``repr``/``str`` are masked, so an accidental log line or exception
message shows ``'***'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import ConfigError

__all__ = [
    "Credentials",
    "Secret",
    "credentials_from_env",
    "dump_mode",
    "read_secret",
    "redact",
    "redact_url",
    "set_dump_mode",
]

MASK = "***"
_SECRET_KEY = re.compile(r"(secret|passw|passphrase|token|api_?key|private)", re.IGNORECASE)
_DUMP_MODE = False


def set_dump_mode(enabled: bool) -> None:
    """Mask credentials inside resolved endpoint URLs (set while printing a config)."""
    global _DUMP_MODE
    _DUMP_MODE = enabled


def dump_mode() -> bool:
    """Whether resolved endpoints are masked (see :func:`set_dump_mode`)."""
    return _DUMP_MODE


class Secret:
    """A string that does not show itself; call :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (only to sign a request or open a connection)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def read_secret(name: str) -> Secret | None:
    """Read secret ``name`` from the environment, or from the file named by ``name_FILE``.

    Parameters
    ----------
    name : str
        Environment variable name, e.g. ``OKX_API_KEY``. Empty means "none configured".

    Returns
    -------
    Secret or None
        ``None`` when neither variable is set.

    Raises
    ------
    ConfigError
        If ``name_FILE`` is set but cannot be read (the message names the variable, not
        the content).
    """
    if not name:
        return None
    value = os.environ.get(name)
    if value:
        return Secret(value)
    file_var = f"{name}_FILE"
    path = os.environ.get(file_var)
    if not path:
        return None
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{file_var} points at an unreadable file ({exc.strerror})") from None
    return Secret(content) if content else None


@dataclass(frozen=True)
class Credentials:
    """API credentials of one exchange; all fields masked in ``repr``."""

    api_key: Secret | None
    api_secret: Secret | None
    passphrase: Secret | None

    @property
    def complete(self) -> bool:
        """True when key and secret are present (OKX also needs the passphrase)."""
        return bool(self.api_key) and bool(self.api_secret)


def credentials_from_env(
    api_key_env: str, api_secret_env: str, passphrase_env: str = ""
) -> Credentials:
    """Read an exchange's credentials from the variables its config names."""
    return Credentials(
        api_key=read_secret(api_key_env),
        api_secret=read_secret(api_secret_env),
        passphrase=read_secret(passphrase_env),
    )


def redact_url(url: str) -> str:
    """Mask the password of ``scheme://user:password@host/...`` (other URLs unchanged)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{user}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact(obj: Any) -> Any:
    """Return a copy of a nested dict/list with secret-looking keys masked and URL passwords hidden.

    Keys are masked when their name suggests a secret (``secret``, ``password``,
    ``passphrase``, ``token``, ``api_key``, ``private``) unless they only *name* an
    environment variable (ending in ``_env``).
    """
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            ks = str(k)
            if _SECRET_KEY.search(ks) and not ks.endswith("_env") and v not in (None, ""):
                out[k] = MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, Secret):
        return MASK
    if isinstance(obj, str) and "://" in obj:
        return redact_url(obj)
    return obj
