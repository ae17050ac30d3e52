# cython: language_level=3
"""Order concentration (walls): the C-level contract of ``ext.walls``.

Other ``ext`` code holding a ``WallDetector`` calls ``det.scan(book, ts_ns)`` (no Python
objects, no GIL) and reads ``det.cur[0:det.n_cur]`` (``WallRec``, best level first, bids
then asks) and ``det.ev[0:det.n_ev]``. See ``docs/slippage.md`` (walls section).
"""

from libc.stdint cimport int32_t, int64_t, uint64_t

from ext.book cimport OrderBook

# Memory of the pointers below: PyMem_Malloc in __cinit__, freed in __dealloc__.

cdef enum:
    WALL_APPEARED = 1       # a level became a wall
    WALL_PULLED = 2         # a wall shrank / vanished with too few trades at its price
    WALL_FILLED = 3         # a wall shrank / vanished and trades at its price explain it
    WALL_FADED = 4          # a wall stopped qualifying without shrinking (band moved/grew)


cdef struct WallCfg:
    double k                # size >= k * band median
    double k_mad            # size - median >= k_mad * band MAD
    double min_share        # size >= min_share * band depth (0 disables)
    double band_bps         # band limited to levels within band_bps of the mid (0: no limit)
    double fill_ratio       # traded >= fill_ratio * lost size  ->  FILLED, else PULLED
    Py_ssize_t band_levels  # band = at most this many live levels from the touch, per side
    Py_ssize_t min_levels   # fewer band levels than this: no statistics, no walls


cdef struct WallRec:
    # Layout == ext.walls.WALL_DTYPE (88 bytes).
    int64_t price           # ticks
    int64_t size            # lots
    int64_t first_seen_ns   # ts of the update where it first qualified
    int64_t age_ns          # last update ts - first_seen_ns
    int64_t traded          # lots traded at its price since the last update
    double distance_bps     # from the mid, positive away from it
    double multiple         # size / band median
    double share            # size / band depth
    double median           # band median (lower median), lots
    double mad              # band median absolute deviation (0 if not computed), lots
    int32_t side            # BID 0 / ASK 1
    int32_t level           # rank among the side's live levels, 0 = touch


cdef struct WallEvent:
    # Layout == ext.walls.EVENT_DTYPE (64 bytes).
    int64_t ts_ns           # update (appeared / ended) timestamp
    int64_t price
    int64_t size            # size when last seen as a wall (APPEARED: size now)
    int64_t remaining       # size at its price in the book now (0 if the level is gone)
    int64_t traded          # lots traded at its price since the previous update
    int64_t age_ns          # time it was a wall (0 for APPEARED)
    double distance_bps     # at the last sighting
    int32_t kind            # WALL_APPEARED / PULLED / FILLED / FADED
    int32_t side


cdef class WallParams:
    cdef WallCfg c


cdef class WallDetector:
    cdef WallCfg cfg
    cdef uint64_t* vals         # live band sizes, best first, when the side has tombstones
    cdef uint64_t* sel          # selection scratch (copies, |size - median|), band + 4
    cdef uint64_t* sel2         # two more buffers the AVX2 selection rotates through
    cdef uint64_t* sel3
    cdef Py_ssize_t* slots      # book slot of each band level, best first (scratch)
    cdef Py_ssize_t* cand       # candidate indexes into vals (scratch)
    cdef uint64_t med_hint[2]   # last band median per side (selection shortcut)
    cdef uint64_t mad_hint[2]   # last band MAD per side
    cdef WallRec* cur           # current walls
    cdef WallRec* nxt           # walls being built
    cdef Py_ssize_t n_cur
    cdef Py_ssize_t cap_walls
    cdef WallEvent* ev
    cdef Py_ssize_t n_ev
    cdef Py_ssize_t ev_cap
    cdef readonly int64_t events_dropped
    cdef readonly int64_t last_ts
    cdef readonly int64_t updates

    cdef Py_ssize_t scan(self, OrderBook book, int64_t ts_ns) noexcept nogil
    cdef void trade(self, int64_t price, int64_t size) noexcept nogil
