"""A persist retry that the broker cannot take must requeue, not drop, the message.

Runs Celery's own ``Task.retry`` against a broker address nothing listens on (no services
needed): Celery answers a failed retry publish with ``Reject(requeue=False)``, which would
delete the message; :func:`orchestrator.data.tasks._retry` turns it into a requeue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Reject

from orchestrator.data.tasks import _retry

pytestmark = pytest.mark.unit


@pytest.fixture
def task() -> Iterator[Any]:
    app = Celery("retry-test", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.task_publish_retry = False
    app.conf.broker_connection_timeout = 1

    @app.task(bind=True, acks_late=True)  # type: ignore[untyped-decorator]
    def persist(self: Any) -> None:
        """Stand-in body; only its request context and ``retry`` are used."""

    persist.push_request(
        id="t-1",
        retries=0,
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": "persist"},
        args=(),
        kwargs={},
    )
    try:
        yield persist
    finally:
        persist.pop_request()
        app.close()


def test_celery_drops_a_retry_it_cannot_queue_and_we_requeue_it(task: Any) -> None:
    with pytest.raises(Reject) as celery_says:  # the behaviour being corrected
        task.retry(exc=RuntimeError("bus down"), countdown=0.1, throw=False)
    assert celery_says.value.requeue is False

    with pytest.raises(Reject) as ours:
        _retry(task, RuntimeError("bus down"), 0.1, None)
    assert ours.value.requeue is True
    assert "127.0.0.1:1" in str(ours.value.reason)
