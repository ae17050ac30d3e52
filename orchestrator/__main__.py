"""``python -m orchestrator``: compose the config with Hydra and run the main job.

Reads ``.env`` from the working directory first (variables already set win), and masks
credentials inside endpoint URLs whenever Hydra only prints the config (``--cfg``,
``--info``).
"""

from __future__ import annotations

import sys

import hydra

from orchestrator.app import run
from orchestrator.config import load_dotenv, setup
from orchestrator.config.paths import config_dir
from orchestrator.config.secrets import set_dump_mode
from orchestrator.errors import ConfigError

__all__ = ["main"]

_PRINT_ONLY = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help")


def main() -> None:
    """Console entry point (also ``slipstream`` when installed)."""
    try:
        load_dotenv()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if any(a.split("=", 1)[0] in _PRINT_ONLY for a in sys.argv[1:]):
        set_dump_mode(True)
    setup()
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(run)()


if __name__ == "__main__":
    main()
