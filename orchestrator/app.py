"""The Hydra task function behind ``python -m orchestrator`` (importable by workers)."""

from __future__ import annotations

import asyncio
import logging

from omegaconf import DictConfig

from orchestrator.config import AppConfig, load_config
from orchestrator.errors import SlipstreamError

__all__ = ["describe", "run"]

logger = logging.getLogger(__name__)


def describe(cfg: AppConfig) -> list[str]:
    """One line per concern of the run: what it would connect to and do (no secrets)."""
    lines = [
        f"run {cfg.run_name}: mode={cfg.mode.name.value} profile={cfg.profile.name} "
        f"(bus={cfg.profile.bus.value}, archive={cfg.profile.archive.value}, "
        f"celery={'on' if cfg.profile.celery else 'off'})",
        f"strategy {cfg.strategy.name}",
    ]
    if not cfg.exchanges:
        lines.append("exchanges: none selected -> embedded exchange simulator")
    for name, ex in cfg.exchanges.items():
        target = "simulator" if ex.use_simulator else ex.ws_url
        lines.append(
            f"exchange {name}: {ex.venue.value} {ex.market.value} {','.join(ex.symbols)} "
            f"[{','.join(ex.channels)}] via {target}"
        )
    return lines


def run(cfg: DictConfig) -> int:
    """Validate the composed config and run the main job.

    Parameters
    ----------
    cfg : DictConfig
        The config Hydra composed from ``conf/``.

    Returns
    -------
    int
        0 on a clean finish. A configuration error exits with status 2 and a one-line
        message instead of a traceback.
    """
    try:
        app_cfg = load_config(cfg)
    except SlipstreamError as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None
    logging.getLogger().setLevel(app_cfg.log_level.upper())
    for line in describe(app_cfg):
        logger.info("%s", line)
    from orchestrator.pipeline import Pipeline

    try:
        return asyncio.run(Pipeline(app_cfg).run())
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130
    except SlipstreamError as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None
