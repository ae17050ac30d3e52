"""The compiled COPY-out reader, bound to the libpq that psycopg loaded.

:class:`ext.pgcopy.CopyDrain` calls libpq through function addresses. They must come from
the very library instance that created psycopg's connections (``PGconn`` is private and
changes between libpq releases), so :func:`copy_drain` finds that instance:

* psycopg's ``python`` implementation: its own ctypes handle;
* ``c`` (linked to the system libpq) and ``binary`` (a libpq bundled in the wheel): the one
  libpq mapped into this process from the matching place (``/proc/self/maps``), attached
  with ``RTLD_NOLOAD`` so nothing new is loaded.

The library must report the same version as psycopg's ``pq.version()``. When anything is
uncertain (another OS, two candidates, a version mismatch, ``ext`` not built) the answer
is ``None`` and the archive keeps its Python loop. ``SLIPSTREAM_NATIVE_COPY=0`` turns the
compiled reader off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

__all__ = ["copy_drain", "libpq_path"]

_LIBPQ_NAME = re.compile(r"^libpq([.-].*)?\.so(\..*)?$")
_lock = threading.Lock()
_cached: tuple[bool, Any] = (False, None)


def _mapped_libpqs() -> set[str]:
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    paths = set()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and _LIBPQ_NAME.match(os.path.basename(parts[5].strip())):
            paths.add(parts[5].strip())
    return paths


def libpq_path() -> str | None:
    """Path of the libpq psycopg's C implementation uses, if it is unambiguous.

    Returns
    -------
    str or None
        The mapped library file, or ``None`` when psycopg runs its ``python``
        implementation, or no / more than one candidate is mapped.
    """
    impl = psycopg.pq.__impl__
    if impl not in ("c", "binary"):
        return None
    bundled = [p for p in _mapped_libpqs() if "psycopg_binary" in p]
    system = [p for p in _mapped_libpqs() if "psycopg_binary" not in p]
    found = bundled if impl == "binary" else system
    return found[0] if len(found) == 1 else None


def _library() -> ctypes.CDLL | None:
    if psycopg.pq.__impl__ == "python":
        from psycopg.pq import _pq_ctypes

        lib: ctypes.CDLL = _pq_ctypes.pq  # type: ignore[attr-defined]
        return lib
    path = libpq_path()
    if path is None:
        return None
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except OSError:
        return None


def _build() -> Any:
    if os.environ.get("SLIPSTREAM_NATIVE_COPY", "1").strip().lower() in {"0", "false", "off"}:
        return None
    try:
        from ext.pgcopy import CopyDrain
    except ImportError:
        return None
    lib = _library()
    if lib is None:
        log.debug("compiled COPY reader off: libpq of psycopg not identified")
        return None
    try:
        version = lib.PQlibVersion
        version.restype = ctypes.c_int
        if version() != psycopg.pq.version():
            log.debug("compiled COPY reader off: libpq version differs from psycopg's")
            return None
        addr = [
            ctypes.cast(getattr(lib, f), ctypes.c_void_p).value
            for f in ("PQgetCopyData", "PQfreemem", "PQconsumeInput", "PQsocket")
        ]
    except AttributeError:
        return None
    funcs = [a for a in addr if a]
    if len(funcs) != len(addr):
        return None
    return CopyDrain(*funcs)


def copy_drain() -> Any:
    """Return the process's :class:`ext.pgcopy.CopyDrain`, or ``None`` (use the Python loop).

    Returns
    -------
    ext.pgcopy.CopyDrain or None
        Built once per process.
    """
    global _cached
    if not _cached[0]:
        with _lock:
            if not _cached[0]:
                _cached = (True, _build())
    return _cached[1]
