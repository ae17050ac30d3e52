"""Benchmark settings shared by all benchmark modules."""

from __future__ import annotations

import platform

import pytest


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, object]
) -> None:
    """Record the machine kind so a baseline is never compared across kinds silently."""
    import os

    machine_info["cpu_count"] = os.cpu_count()
    machine_info["platform_detail"] = platform.platform()
