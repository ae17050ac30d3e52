"""The wheel carries everything an installed ``python -m orchestrator`` needs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_every_package_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO).parts)
        for root in ("orchestrator", "ext")
        for p in (REPO / root).rglob("__init__.py")
    }
    found.add("orchestrator.conf")  # conf/ is shipped under this name
    assert listed == found


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheels = list((out / "dist").glob("slipstream-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    for expected in (
        "orchestrator/conf/config.yaml",
        "orchestrator/conf/__init__.py",
        "orchestrator/conf/exchange/okx.yaml",
        "ext/scaled.pyi",
        "ext/scaled.pxd",
    ):
        assert expected in names, f"{expected} missing from the wheel"
    assert any(n.startswith("ext/scaled.") and n.endswith(".so") for n in names)
    assert not any(n.endswith((".pyx", ".c")) for n in names)
    site = out / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheels[0]),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.packaging
def test_installed_wheel_imports_from_site(installed_wheel: Path, tmp_path: Path):
    res = run_installed(
        installed_wheel,
        tmp_path,
        "-c",
        "import ext.scaled, orchestrator; print(ext.scaled.__file__); print(orchestrator.__file__)",
    )
    assert res.returncode == 0, res.stderr
    for line in res.stdout.split():
        assert line.startswith(str(installed_wheel)), line


@pytest.mark.packaging
def test_installed_cli_composes_from_any_folder(installed_wheel: Path, tmp_path: Path):
    res = run_installed(
        installed_wheel, tmp_path, "-m", "orchestrator", "+exchange=okx", "--cfg", "job"
    )
    assert res.returncode == 0, res.stderr
    assert "okx:" in res.stdout and "ws_url: wss://ws.okx.com:8443/ws/v5/public" in res.stdout
