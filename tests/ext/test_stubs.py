"""Every compiled module imports, has a stub, and the stub matches it (mypy stubtest)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

EXT = Path(__file__).resolve().parents[2] / "ext"
MODULES = sorted(p.stem for p in EXT.glob("*.pyx"))


def test_there_are_compiled_modules():
    assert "scaled" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_is_compiled_and_stubbed(name):
    mod = importlib.import_module(f"ext.{name}")
    assert Path(mod.__file__).suffix in {".so", ".pyd"}, f"ext.{name} is not the compiled module"
    assert (EXT / f"{name}.pyi").is_file(), f"ext/{name}.pyi is missing"


def test_stubs_match_compiled_modules():
    res = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "ext"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
