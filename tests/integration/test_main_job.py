"""The main job end to end: ``python -m orchestrator`` on the simulator, metrics, capture."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from orchestrator.capture.verify import verify_files
from orchestrator.config import load_config
from orchestrator.pipeline import Pipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def orchestrator(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SUPPORTED_EXCHANGES",)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_embedded_default_shows_live_books_and_records_a_verifiable_capture(tmp_path: Path) -> None:
    out = orchestrator(
        "duration=5",
        "metrics.port=null",
        f"capture.dir={tmp_path}",
        "hydra.run.dir=" + str(tmp_path / "run"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Traceback" not in log
    for exchange, symbol in [
        ("binance", "BTCUSDT"),
        ("binance_usdm", "ETHUSDT"),
        ("okx", "BTC-USDT"),
        ("okx_swap", "ETH-USDT-SWAP"),
    ]:
        rows = [
            ln
            for ln in log.splitlines()
            if f" {exchange} " in f" {ln.split(' - ', 1)[-1]}" and symbol in ln
        ]
        assert any(" live " in ln for ln in rows), (exchange, symbol, log[-2000:])
    assert "0 gaps" in log
    captures = list(tmp_path.glob("*.raw.gz"))
    assert len(captures) == 1
    report = verify_files([captures[0]])
    assert report["ok"], report
    books = [i for i in report["instruments"] if i.get("channel") in ("depth", "books")]
    assert len(books) == 8
    assert all(b["sequence_gaps"] == 0 and b["in_sync"] for b in books)
    assert sum(b["checksums"]["verified"] for b in books) > 0  # OKX books with checksums


def test_users_command_runs_on_the_simulator_with_the_documented_override(tmp_path: Path) -> None:
    out = orchestrator(
        "+exchange=okx",
        "strategy=momentum",
        "exchanges.okx.use_simulator=true",
        "duration=4",
        f"profile.local_archive_dir={tmp_path / 'archive'}",
        "metrics.port=null",
        "capture.record=false",
        "hydra.run.dir=" + str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "BTC-USDT" in log and " live " in log and "Traceback" not in log
    assert "binance" not in log.split("exchange simulator on", 1)[-1].split("okx:", 1)[-1]


def test_unreachable_venue_logs_and_retries_without_traceback(tmp_path: Path) -> None:
    out = orchestrator(
        "+exchange=okx",
        "exchanges.okx.ws_url=ws://127.0.0.1:1/ws/v5/public",
        "exchanges.okx.rest_url=http://127.0.0.1:1",
        "duration=3",
        f"profile.local_archive_dir={tmp_path / 'archive'}",
        "metrics.port=null",
        "capture.record=false",
        "hydra.run.dir=" + str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Traceback" not in log
    assert "cannot connect" in log and "retrying in" in log
    assert "scales are inferred" in log


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "metrics.port=null",
            "capture.record=false",
            "view.interval=0.5",
            "hydra.run.dir=" + str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(6)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert "frames, 0 gaps" in out


def test_metrics_endpoint_serves_prometheus_text(compose, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config(
        compose(
            "metrics.port=0",
            "capture.record=false",
            "view.enabled=false",
            f"profile.local_archive_dir={tmp_path}",
        )
    )

    async def go() -> str:
        pipe = Pipeline(cfg)
        task = asyncio.create_task(pipe.run())
        try:
            deadline = time.monotonic() + 20
            while True:
                await asyncio.sleep(0.5)
                server = getattr(pipe, "metrics_server", None)
                if server is not None and server.port:
                    url = f"http://127.0.0.1:{server.port}/metrics"
                    async with aiohttp.ClientSession() as s, s.get(url) as r:
                        assert r.status == 200
                        text = await r.text()
                    if 'slipstream_book_live{exchange="okx",symbol="BTC-USDT"} 1' in text:
                        return text
                assert time.monotonic() < deadline, "books never live in metrics"
        finally:
            pipe.stop()
            await task

    text = asyncio.run(go())
    assert "# TYPE slipstream_frames_total counter" in text
    assert 'slipstream_apply_latency_seconds{exchange="binance",quantile="0.99"}' in text
    assert 'slipstream_signal_imbalance{exchange="okx_swap",symbol="BTC-USDT-SWAP"}' in text
    assert "slipstream_bus_dropped_total 0" in text
    assert "slipstream_bus_persist_lag_seconds " in text
