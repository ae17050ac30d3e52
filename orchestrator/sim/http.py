"""A minimal asyncio HTTP/1.1 server for the simulator's REST endpoints.

Handles ``GET`` (and ``HEAD``) with query strings, keep-alive, and JSON answers; other
methods get 405. The handler is a plain function from :class:`Request` to
:class:`Response`. It is a test peer, not a general web server: no chunked request
bodies, no TLS, one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

__all__ = ["HttpServer", "Request", "Response", "json_response"]

logger = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Request:
    """A parsed request: method, path, query (last value per name wins) and headers."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer: str = ""


@dataclass
class Response:
    """An answer: status, body and extra headers."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json;charset=UTF-8"


def json_response(
    status: int, body: bytes, headers: list[tuple[str, str]] | None = None
) -> Response:
    """Build a JSON :class:`Response`."""
    return Response(status, body, list(headers or []))


Handler = Callable[[Request], Response]


class HttpServer:
    """Serve ``handler`` on ``host:port`` (``port`` 0 = ephemeral).

    Parameters
    ----------
    handler
        Called once per request on the event loop; it must not block.
    name
        Label for log lines.
    """

    def __init__(self, handler: Handler, name: str = "rest") -> None:
        self._handler = handler
        self._name = name
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self.port

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        peer_host = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            while await self._one(reader, writer, peer_host):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        """Serve one request; False when the connection should close."""
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER_BYTES:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            writer.write(_encode(Response(400, b'{"msg":"bad request line"}'), False, False))
            await writer.drain()
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        connection = headers.get("connection", "").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.requests += 1
        if method not in ("GET", "HEAD"):
            response = Response(405, b'{"code":-1,"msg":"method not allowed"}')
        else:
            try:
                response = self._handler(Request(method, split.path, query, headers, peer))
            except Exception:
                logger.exception("%s: handler failed for %s", self._name, target)
                response = Response(500, b'{"code":-1,"msg":"internal error"}')
        writer.write(_encode(response, keep, method == "HEAD"))
        await writer.drain()
        return keep


def _encode(response: Response, keep_alive: bool, head_only: bool) -> bytes:
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines.extend(f"{k}: {v}" for k, v in response.headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body
