r"""``python -m orchestrator.worker``: start a Celery worker with Hydra-style overrides.

.. code-block:: console

   $ python -m orchestrator.worker queues=persist
   $ python -m orchestrator.worker queues=persist,execute concurrency=2
   $ python -m orchestrator.worker queues=backtest celery.long_visibility_timeout=43200

Shorthands (everything else is passed to Hydra as an override of ``conf/config.yaml``):

=================  ==============================  =========================================
shorthand          same as                         meaning
=================  ==============================  =========================================
``queues=a,b``     ``celery.worker.queues=[a,b]``  queues to consume (persist, backtest,
                                                   execute, default)
``concurrency=N``  ``celery.worker.concurrency=N``  pool processes
``pool=P``         ``celery.worker.pool=P``        prefork (default), solo, threads
``loglevel=L``     ``celery.worker.loglevel=L``    DEBUG, INFO, WARNING, ERROR
``migrate=B``      ``celery.worker.migrate=B``     apply archive migrations at start
=================  ==============================  =========================================

Equivalent ``celery`` command (same app, same config from ``conf/`` and the environment;
the lane and the start-up migration are applied by the app's ``celeryd_init`` hook)::

   celery -A orchestrator.celery_app worker -Q persist -c 1 -P prefork -l INFO \
       --without-gossip --without-mingle --without-heartbeat

Environment: ``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``, ``REDIS_URL``,
``TIMESCALEDB_URL`` (and a ``.env`` file in the working directory) override the endpoints.
Exit status: 2 on a configuration error (one line, no traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from orchestrator.config.schema import AppConfig
from orchestrator.errors import ConfigError, SlipstreamError

__all__ = ["SHORTHANDS", "main", "parse_args", "worker_argv"]

#: ``key=value`` arguments that are shorthands for ``celery.worker.<key>=value``.
SHORTHANDS = ("queues", "concurrency", "pool", "loglevel", "migrate")

_USAGE = (
    "usage: python -m orchestrator.worker [queues=persist[,execute...]] [concurrency=N] "
    "[pool=prefork|solo|threads] [loglevel=INFO] [migrate=true|false] [hydra overrides...]"
)


def parse_args(argv: Sequence[str]) -> list[str]:
    """Hydra overrides for ``argv`` (shorthands expanded to ``celery.worker.*``).

    Raises
    ------
    ConfigError
        On an argument that is not ``key=value`` (or ``+key=value`` / ``~key``).
    """
    overrides: list[str] = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep and not arg.startswith("~"):
            raise ConfigError(f"expected key=value, got {arg!r}\n{_USAGE}")
        if key in SHORTHANDS:
            if key == "queues":
                names = [q.strip() for q in value.strip("[]").split(",") if q.strip()]
                value = "[" + ",".join(names) + "]"
            overrides.append(f"celery.worker.{key}={value}")
        else:
            overrides.append(arg)
    return overrides


def worker_argv(cfg: AppConfig) -> list[str]:
    """``celery worker`` arguments for the ``celery.worker`` section of ``cfg``."""
    w = cfg.celery.worker
    queues = ",".join(w.queues)
    return [
        "worker",
        "-Q",
        queues,
        "-c",
        str(w.concurrency),
        "-P",
        w.pool,
        "-l",
        w.loglevel.upper(),
        "-n",
        f"{'+'.join(w.queues)}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Compose the config, install it in the Celery app and run the worker (blocks)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        print(__doc__)
        return 0
    from orchestrator.config import load_dotenv

    try:
        load_dotenv()
        from orchestrator.celery_app import app, configure, load_app_config

        cfg = load_app_config(parse_args(args))
        configure(cfg)
    except SlipstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import orchestrator.data.tasks  # noqa: F401 - registers the persist task

    app.worker_main(argv=worker_argv(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
