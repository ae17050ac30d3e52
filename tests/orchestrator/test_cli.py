"""``python -m orchestrator`` as a user runs it (subprocess, from a folder outside the repo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "SUPPORTED_EXCHANGES"}}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_card_command_prints_okx_under_exchanges(tmp_path: Path):
    res = run_cli("+exchange=okx", "strategy=momentum", "--cfg", "job", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = yaml.safe_load(res.stdout)
    assert list(cfg["exchanges"]) == ["okx"]
    assert cfg["exchanges"]["okx"]["ws_url"] == "wss://ws.okx.com:8443/ws/v5/public"
    assert cfg["strategy"]["name"] == "momentum"


def test_two_exchanges_print_side_by_side(tmp_path: Path):
    res = run_cli("exchange=[binance,okx]", "--cfg", "job", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert sorted(yaml.safe_load(res.stdout)["exchanges"]) == ["binance", "okx"]


def test_misspelled_key_is_a_clear_error_not_a_traceback(tmp_path: Path):
    res = run_cli("strategy.lookbak=3", cwd=tmp_path)
    assert res.returncode != 0
    assert "Key 'lookbak' not in 'MomentumConfig'" in res.stderr
    assert "Traceback" not in res.stderr


def test_appended_unknown_key_is_a_clear_error(tmp_path: Path):
    res = run_cli("+strategy.lookbak=3", cwd=tmp_path)
    assert res.returncode == 2
    assert "strategy.lookbak" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


def test_unsupported_exchange_is_a_clear_error(tmp_path: Path):
    res = run_cli("+exchange=okx", cwd=tmp_path, env={"SUPPORTED_EXCHANGES": "binance"})
    assert res.returncode == 2
    assert "not in SUPPORTED_EXCHANGES" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr


def test_resolved_dump_masks_url_password(tmp_path: Path):
    res = run_cli(
        "--cfg",
        "job",
        "--resolve",
        cwd=tmp_path,
        env={"REDIS_URL": "redis://:hunter2@cache:6379/0"},
    )
    assert res.returncode == 0, res.stderr
    assert "hunter2" not in res.stdout
    assert yaml.safe_load(res.stdout)["services"]["redis_url"] == "redis://:***@cache:6379/0"


def test_dotenv_in_working_directory_is_read(tmp_path: Path):
    (tmp_path / ".env").write_text("SUPPORTED_EXCHANGES=binance\n")
    res = run_cli("+exchange=okx", cwd=tmp_path)
    assert res.returncode == 2
    assert "not in SUPPORTED_EXCHANGES" in res.stderr + res.stdout


def test_default_run_validates_and_exits_cleanly(tmp_path: Path):
    res = run_cli(
        "hydra.run.dir=" + str(tmp_path / "out"),
        "duration=1",
        "metrics.port=null",
        "capture.dir=" + str(tmp_path / "cap"),
        "profile.local_archive_dir=" + str(tmp_path / "archive"),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "embedded exchange simulator" in res.stderr + res.stdout
    assert list((tmp_path / "cap").glob("*.raw.gz"))
