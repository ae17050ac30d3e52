# cython: language_level=3, auto_pickle=False
"""Read a ``COPY ... TO STDOUT`` stream from libpq in one loop without the GIL.

libpq returns a COPY stream one ``CopyData`` message (one row) at a time through
``PQgetCopyData``; a Python loop over a million rows costs ~0.5 µs per row, more than the
server needs to produce it. :class:`CopyDrain` runs the same calls in C and collects
the payload (PGCOPY header, rows, trailer) in one growing buffer.

It does not link libpq. The caller passes the addresses of the libpq functions of the
library its driver already loaded (``orchestrator.data.archive`` resolves them for
psycopg), so the ``PGconn`` is always handled by the library that created it.
"""

cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

cimport numpy as cnp

cnp.import_array()

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd* fds, unsigned long nfds, int timeout)
    short POLLIN

ctypedef int (*get_copy_data_t)(void* conn, char** buffer, int async_) noexcept nogil
ctypedef void (*free_mem_t)(void* ptr) noexcept nogil
ctypedef int (*consume_input_t)(void* conn) noexcept nogil
ctypedef int (*socket_t)(const void* conn) noexcept nogil

cdef enum:
    _DONE = -1
    _FAILED = -2
    _LOST = -3
    _NOMEM = -100
    _TICK = 1        # waited POLL_MS without data: check signals, then go on
    _POLL_MS = 200
    _FIRST = 1 << 20

#: The stream ended normally; fetch the command's result next (``PQgetResult``).
COPY_DONE = _DONE
#: libpq reported an error; fetch the result next for the server's message.
COPY_FAILED = _FAILED
#: The connection broke (``PQconsumeInput`` failed or the socket is gone).
COPY_CONNECTION_LOST = _LOST

cdef void _free_capsule(object cap) noexcept:
    free(PyCapsule_GetPointer(cap, NULL))


@cython.final
cdef class CopyDrain:
    """Collects a COPY-out stream through libpq's own functions, GIL released.

    Parameters
    ----------
    get_copy_data, free_mem, consume_input, socket
        Addresses of ``PQgetCopyData``, ``PQfreemem``, ``PQconsumeInput`` and
        ``PQsocket`` in the libpq instance that owns the connections passed to
        :meth:`drain`.

    Raises
    ------
    ValueError
        If an address is 0.
    """

    cdef get_copy_data_t _get
    cdef free_mem_t _free
    cdef consume_input_t _consume
    cdef socket_t _socket

    def __init__(self, uintptr_t get_copy_data, uintptr_t free_mem, uintptr_t consume_input,
                 uintptr_t socket):
        if not (get_copy_data and free_mem and consume_input and socket):
            raise ValueError("every libpq function address must be non-zero")
        self._get = <get_copy_data_t>get_copy_data
        self._free = <free_mem_t>free_mem
        self._consume = <consume_input_t>consume_input
        self._socket = <socket_t>socket

    cdef int _pump(self, void* conn, char** buf, Py_ssize_t* n, Py_ssize_t* cap) noexcept nogil:
        """Append rows to ``buf`` until the stream ends, fails, or POLL_MS pass idle."""
        cdef char* row
        cdef char* grown
        cdef int got, ready
        cdef Py_ssize_t want
        cdef pollfd pfd
        while True:
            row = NULL
            got = self._get(conn, &row, 1)
            if got > 0:
                want = n[0] + got
                if want > cap[0]:
                    while cap[0] < want:
                        cap[0] *= 2
                    grown = <char*>realloc(buf[0], cap[0])
                    if grown == NULL:
                        self._free(row)
                        return _NOMEM
                    buf[0] = grown
                memcpy(buf[0] + n[0], row, got)
                n[0] = want
                self._free(row)
            elif got == 0:
                pfd.fd = self._socket(conn)
                if pfd.fd < 0:
                    return _LOST
                pfd.events = POLLIN
                pfd.revents = 0
                ready = poll(&pfd, 1, _POLL_MS)
                if ready == 0:
                    return _TICK
                if ready > 0 and not self._consume(conn):
                    return _LOST
                # ready < 0: EINTR; go round (signals are checked on the next tick)
            else:
                if row != NULL:
                    self._free(row)
                return got

    def drain(self, uintptr_t conn) -> tuple[int, cnp.ndarray]:
        """Read the COPY-out stream of ``conn`` (a ``PGconn*``) to its end.

        The connection must be in the COPY OUT state (its ``COPY ... TO STDOUT`` result
        fetched). Keyboard interrupts are honoured every 200 ms of silence.

        Parameters
        ----------
        conn
            Address of the ``PGconn``.

        Returns
        -------
        tuple of (int, numpy.ndarray)
            :data:`COPY_DONE`, :data:`COPY_FAILED` or :data:`COPY_CONNECTION_LOST`, and
            the ``uint8`` payload received (everything the stream sent before it ended).

        Raises
        ------
        MemoryError
            If the buffer cannot grow.
        """
        if not conn:
            raise ValueError("conn must be a PGconn address")
        cdef Py_ssize_t n = 0, cap = _FIRST
        cdef char* buf = <char*>malloc(cap)
        cdef char* grown
        cdef int st
        cdef cnp.npy_intp dims[1]
        cdef cnp.ndarray arr
        if buf == NULL:
            raise MemoryError("no memory for the COPY buffer")
        try:
            while True:
                with nogil:
                    st = self._pump(<void*>conn, &buf, &n, &cap)
                if st == _NOMEM:
                    raise MemoryError(f"COPY buffer could not grow past {cap} bytes")
                if st != _TICK:
                    break
                PyErr_CheckSignals()
            if n < cap:  # give back the doubling slack (a failed shrink keeps the block)
                grown = <char*>realloc(buf, n if n > 0 else 1)
                if grown != NULL:
                    buf = grown
            cap_obj = PyCapsule_New(buf, NULL, _free_capsule)
        except BaseException:
            free(buf)
            raise
        dims[0] = n
        arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_UINT8, buf)
        cnp.set_array_base(arr, cap_obj)  # the array frees the block
        return st, arr
