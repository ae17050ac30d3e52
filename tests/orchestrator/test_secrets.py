"""Secrets stay out of reprs, logs and config dumps."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.secrets import (
    MASK,
    Secret,
    credentials_from_env,
    read_secret,
    redact,
    redact_url,
)
from orchestrator.errors import ConfigError

pytestmark = pytest.mark.unit


def test_secret_never_shows_itself():
    s = Secret("abcdef-very-secret")
    assert "very-secret" not in repr(s)
    assert "very-secret" not in str(s)
    assert "very-secret" not in f"{s} {s!r} {[s]} {dict(k=s)}"
    assert s.reveal() == "abcdef-very-secret"


def test_read_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("X_API_KEY", raising=False)
    monkeypatch.delenv("X_API_KEY_FILE", raising=False)
    assert read_secret("X_API_KEY") is None
    f = tmp_path / "key"
    f.write_text("from-file\n")
    monkeypatch.setenv("X_API_KEY_FILE", str(f))
    assert read_secret("X_API_KEY").reveal() == "from-file"  # type: ignore[union-attr]
    monkeypatch.setenv("X_API_KEY", "from-env")
    assert read_secret("X_API_KEY").reveal() == "from-env"  # type: ignore[union-attr]


def test_unreadable_secret_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("Y_SECRET", raising=False)
    monkeypatch.setenv("Y_SECRET_FILE", "/nonexistent/secret")
    with pytest.raises(ConfigError, match="Y_SECRET_FILE"):
        read_secret("Y_SECRET")


def test_credentials_repr_is_masked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OKX_API_KEY", "key-123456")
    monkeypatch.setenv("OKX_API_SECRET", "sec-abcdef")
    monkeypatch.setenv("OKX_API_PASSPHRASE", "pass-xyz")
    creds = credentials_from_env("OKX_API_KEY", "OKX_API_SECRET", "OKX_API_PASSPHRASE")
    assert creds.complete
    text = repr(creds)
    for value in ("key-123456", "sec-abcdef", "pass-xyz"):
        assert value not in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter2@host:6379/0", f"redis://:{MASK}@host:6379/0"),
        ("postgresql://user:pw@db/x", f"postgresql://user:{MASK}@db/x"),
        ("postgresql://user@db/x", "postgresql://user@db/x"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_redact_nested_config():
    data = {
        "credentials": {"api_key_env": "OKX_API_KEY", "api_secret": "s3cr3t"},
        "services": {"redis_url": "redis://:pw@h:1/0"},
        "list": [{"password": "p"}, "plain"],
        "token": None,
    }
    out = redact(data)
    assert out["credentials"]["api_key_env"] == "OKX_API_KEY"
    assert out["credentials"]["api_secret"] == MASK
    assert out["services"]["redis_url"] == f"redis://:{MASK}@h:1/0"
    assert out["list"] == [{"password": MASK}, "plain"]
    assert out["token"] is None
