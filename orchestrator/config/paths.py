"""Where the Hydra YAML lives: inside the installed package, or ``conf/`` of a checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["config_dir"]


def config_dir() -> Path:
    """Absolute path of the config directory holding ``config.yaml``.

    The wheel ships ``conf/`` as the package ``orchestrator.conf``; an editable install
    maps that package to the checkout's ``conf/``. A bare checkout (nothing installed)
    falls back to ``<repo>/conf``.
    """
    spec = importlib.util.find_spec("orchestrator.conf")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location)
            if (candidate / "config.yaml").is_file():
                return candidate.resolve()
    fallback = Path(__file__).resolve().parents[2] / "conf"
    if (fallback / "config.yaml").is_file():
        return fallback
    raise FileNotFoundError(
        "Slipstream's configuration directory (orchestrator.conf / conf/) is missing; "
        "reinstall the package"
    )
