# cython: language_level=3, auto_pickle=False
"""Exact order-book walk of a market order: fill price, slippage, size for a budget.

``walk(book, BUY, qty)`` takes ``qty`` lots from the asks of an ``ext.book.OrderBook``
(``SELL`` takes the bids), best level first, skipping tombstones, and reports the exact
notional, VWAP, worst price, levels consumed, shortfall when the visible depth is too thin,
slippage in bps from the touch and from the mid, and a total cost in bps that adds the
taker fee and a square-root impact term for the lots beyond the visible depth.
``max_qty(book, side, budget_bps)`` is the inverse: the largest quantity whose cost stays
within a budget. ``walk_many`` walks an array of sizes with the GIL released.

All three share the ``noexcept nogil`` cores of ``ext/slippage.pxd`` (``slip_walk``,
``slip_max_qty``), which other ``ext`` modules cimport. Units: prices in ticks, sizes in
lots (see ``book.price_scale`` / ``book.size_scale``); see ``docs/slippage.md`` for the
formulas and the 128-bit arithmetic.
"""

cimport cython

import math

import numpy as np

from libc.stdint cimport int64_t, uint64_t

from ext.book cimport OrderBook
from ext.slippage cimport (
    SLIP_BUY,
    SLIP_EBUDGET,
    SLIP_EEMPTY,
    SLIP_EQTY,
    SLIP_EREF,
    SLIP_ESIDE,
    SLIP_ESYNC,
    SLIP_OK,
    SLIP_REF_MID,
    SLIP_REF_TOUCH,
    SLIP_SELL,
    SlipCtx,
    SlipParams,
    SlipWalk,
    _slip_ctx,
    slip_max_qty,
    slip_params_default,
    slip_walk,
)

BUY = SLIP_BUY
SELL = SLIP_SELL

#: One walk per record; the layout of the C struct ``SlipWalk`` (see ``WalkResult``).
WALK_DTYPE = np.dtype([
    ("qty", np.int64),
    ("filled", np.int64),
    ("shortfall", np.int64),
    ("levels", np.int64),
    ("best_price", np.int64),
    ("worst_price", np.int64),
    ("notional_lo", np.uint64),
    ("notional_hi", np.int64),
    ("avg_price", np.float64),
    ("mid", np.float64),
    ("slippage_touch_bps", np.float64),
    ("slippage_mid_bps", np.float64),
    ("impact_bps", np.float64),
    ("expected_price", np.float64),
    ("effective_price", np.float64),
    ("cost_bps", np.float64),
])
if WALK_DTYPE.itemsize != sizeof(SlipWalk):
    raise ImportError("WALK_DTYPE does not match struct SlipWalk")

_REFERENCES = {"mid": SLIP_REF_MID, "touch": SLIP_REF_TOUCH}


cdef inline double _finite(str name, double value, double lo, double hi,
                           bint lo_open) except? -1.0:
    if not math.isfinite(value) or value < lo or (lo_open and value == lo) or value >= hi:
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ValueError(f"{name} must be finite, {bound} and < {hi}, was {value}")
    return value


@cython.final
cdef class WalkParams:
    """Cost model of a walk: fees, square-root impact beyond visible depth, reference.

    Parameters
    ----------
    fee_bps : float, default 0.0
        Taker fee in bps of the fill price (``-10000 < fee_bps < 10000``; negative is a
        rebate). Added to ``cost_bps`` and ``effective_price``.
    impact_coef : float, default 0.0
        Coefficient ``c >= 0`` of the impact of the shortfall ``s`` (lots the visible book
        cannot fill): ``impact_bps = c * sigma_bps * sqrt(s / depth_scale)``. The shortfall
        lots are priced at the worst visible price moved by ``impact_bps`` against the
        order. 0 disables the term.
    sigma_bps : float, default 0.0
        Volatility scale of the impact term in bps (e.g. daily volatility), ``>= 0``.
    depth_scale : float, default 1.0
        ADV-like scale in lots the shortfall is compared with, ``> 0``.
    reference : {"mid", "touch"}, default "mid"
        Price ``cost_bps`` is measured from: the mid, or the best price of the walked side.
    require_in_sync : bool, default True
        Refuse books whose ``in_sync`` is False (``RuntimeError``): a stale book gives a
        wrong answer silently.
    """

    def __init__(self, double fee_bps=0.0, double impact_coef=0.0, double sigma_bps=0.0,
                 double depth_scale=1.0, str reference="mid", bint require_in_sync=True):
        _finite("fee_bps", fee_bps, -1e4, 1e4, True)
        _finite("impact_coef", impact_coef, 0.0, math.inf, False)
        _finite("sigma_bps", sigma_bps, 0.0, math.inf, False)
        _finite("depth_scale", depth_scale, 0.0, math.inf, True)
        if reference not in _REFERENCES:
            raise ValueError(f"reference must be 'mid' or 'touch', was {reference!r}")
        slip_params_default(&self.c)
        self.c.fee_bps = fee_bps
        self.c.impact_coef = impact_coef
        self.c.sigma_bps = sigma_bps
        self.c.depth_scale = depth_scale
        self.c.reference = _REFERENCES[reference]
        self.c.require_in_sync = require_in_sync

    @property
    def fee_bps(self) -> float:
        """Taker fee in bps."""
        return self.c.fee_bps

    @property
    def impact_coef(self) -> float:
        """Coefficient of the square-root impact term."""
        return self.c.impact_coef

    @property
    def sigma_bps(self) -> float:
        """Volatility scale of the impact term, bps."""
        return self.c.sigma_bps

    @property
    def depth_scale(self) -> float:
        """ADV-like depth scale of the impact term, lots."""
        return self.c.depth_scale

    @property
    def reference(self) -> str:
        """``"mid"`` or ``"touch"``."""
        return "touch" if self.c.reference == SLIP_REF_TOUCH else "mid"

    @property
    def require_in_sync(self) -> bool:
        """Whether out-of-sync books are refused."""
        return self.c.require_in_sync

    def __repr__(self) -> str:
        return (f"WalkParams(fee_bps={self.c.fee_bps!r}, impact_coef={self.c.impact_coef!r}, "
                f"sigma_bps={self.c.sigma_bps!r}, depth_scale={self.c.depth_scale!r}, "
                f"reference={self.reference!r}, require_in_sync={self.require_in_sync!r})")


cdef WalkParams _DEFAULT = WalkParams()


@cython.final
@cython.freelist(16)
cdef class WalkResult:
    """Outcome of one walk (read-only). Prices in ticks, sizes in lots, costs in bps.

    Costs are cost-positive for both sides: a buy filled above the touch and a sell
    filled below it both have positive slippage.
    """

    def __init__(self) -> None:
        raise TypeError("WalkResult is returned by walk(), not constructed")

    @property
    def qty(self) -> int:
        """Lots asked."""
        return self.r.qty

    @property
    def filled(self) -> int:
        """Lots the visible book fills (``qty - shortfall``)."""
        return self.r.filled

    @property
    def shortfall(self) -> int:
        """Lots beyond the visible depth (0 when the book is deep enough)."""
        return self.r.shortfall

    @property
    def levels(self) -> int:
        """Live levels consumed, the last one possibly in part."""
        return self.r.levels

    @property
    def best_price(self) -> int:
        """Touch of the walked side (best ask for a buy), ticks."""
        return self.r.best_price

    @property
    def worst_price(self) -> int:
        """Price of the last level consumed, ticks."""
        return self.r.worst_price

    @property
    def notional(self) -> int:
        """Exact ``sum(price * lots)`` of the filled lots in ticks x lots (a Python int)."""
        return (<object>self.r.notional_hi << 64) + self.r.notional_lo

    @property
    def avg_price(self) -> float:
        """VWAP of the filled lots (``notional / filled``), ticks."""
        return self.r.avg_price

    @property
    def mid(self) -> float:
        """Mid of the book, ticks; NaN unless both sides have levels."""
        return self.r.mid

    @property
    def slippage_touch_bps(self) -> float:
        """``avg_price`` vs the touch, bps, cost-positive; no fee, no impact."""
        return self.r.slippage_touch_bps

    @property
    def slippage_mid_bps(self) -> float:
        """``avg_price`` vs the mid, bps, cost-positive; NaN without a mid."""
        return self.r.slippage_mid_bps

    @property
    def impact_bps(self) -> float:
        """Square-root impact applied to the shortfall lots, bps (0 without shortfall)."""
        return self.r.impact_bps

    @property
    def expected_price(self) -> float:
        """Average price of all ``qty`` lots, shortfall lots at the impacted worst price."""
        return self.r.expected_price

    @property
    def effective_price(self) -> float:
        """``expected_price`` with the taker fee: ``* (1 + fee)`` buy, ``* (1 - fee)`` sell."""
        return self.r.effective_price

    @property
    def cost_bps(self) -> float:
        """``effective_price`` vs the reference price (mid or touch), bps, cost-positive."""
        return self.r.cost_bps

    def as_dict(self) -> dict:
        """All fields as a dict (``notional`` as an exact int)."""
        return {
            "qty": self.r.qty, "filled": self.r.filled, "shortfall": self.r.shortfall,
            "levels": self.r.levels, "best_price": self.r.best_price,
            "worst_price": self.r.worst_price, "notional": self.notional,
            "avg_price": self.r.avg_price, "mid": self.r.mid,
            "slippage_touch_bps": self.r.slippage_touch_bps,
            "slippage_mid_bps": self.r.slippage_mid_bps, "impact_bps": self.r.impact_bps,
            "expected_price": self.r.expected_price,
            "effective_price": self.r.effective_price, "cost_bps": self.r.cost_bps,
        }

    def __repr__(self) -> str:
        return (f"WalkResult(qty={self.r.qty}, filled={self.r.filled}, "
                f"levels={self.r.levels}, avg_price={self.r.avg_price!r}, "
                f"worst_price={self.r.worst_price}, cost_bps={self.r.cost_bps!r})")


cdef int _raise(int st, int side, object what) except -1:
    """Raise the Python error of a ``SLIP_*`` status."""
    if st == SLIP_EQTY:
        raise ValueError(f"qty must be > 0, was {what}")
    if st == SLIP_ESIDE:
        raise ValueError(f"side must be BUY (1) or SELL (-1), was {side}")
    if st == SLIP_EEMPTY:
        raise ValueError(f"the {'ask' if side == SLIP_BUY else 'bid'} side of the book is "
                         f"empty: nothing to walk")
    if st == SLIP_ESYNC:
        raise RuntimeError("the book is out of sync (in_sync is False); use "
                           "WalkParams(require_in_sync=False) to walk it anyway")
    if st == SLIP_EREF:
        raise ValueError("the reference price is unavailable: the mid needs both sides and "
                         "the reference must be > 0")
    if st == SLIP_EBUDGET:
        raise ValueError(f"budget_bps must not be NaN, was {what}")
    raise AssertionError(f"unknown status {st}")


def walk(OrderBook book not None, int side, int64_t qty,
         WalkParams params=None) -> WalkResult:
    """Walk a market order of ``qty`` lots through ``book``.

    Parameters
    ----------
    book : ext.book.OrderBook
        The book to take liquidity from (not modified).
    side : int
        Order side: ``BUY`` (1, walks the asks) or ``SELL`` (-1, walks the bids).
    qty : int
        Lots, ``> 0``.
    params : WalkParams, optional
        Fee, impact and reference; default ``WalkParams()`` (no fee, no impact, cost from
        the mid, in-sync books only).

    Returns
    -------
    WalkResult
        Exact integer fields (filled, shortfall, levels, prices, notional) and derived
        floats (VWAP, slippage, impact, cost).

    Raises
    ------
    ValueError
        ``qty <= 0``, a side other than ``BUY``/``SELL``, or an empty walked side.
    RuntimeError
        The book is out of sync and ``params.require_in_sync``.
    """
    cdef WalkParams p = _DEFAULT if params is None else params
    cdef WalkResult res = WalkResult.__new__(WalkResult)
    cdef int st = slip_walk(book, side, qty, &p.c, &res.r)
    if st != SLIP_OK:
        _raise(st, side, qty)
    return res


def walk_many(OrderBook book not None, int side, const int64_t[::1] qtys not None,
              out not None, WalkParams params=None) -> int:
    """Walk every quantity of ``qtys`` through the same book, GIL released.

    Parameters
    ----------
    book : ext.book.OrderBook
        The book (not modified).
    side : int
        ``BUY`` (1) or ``SELL`` (-1).
    qtys : numpy.ndarray of int64
        C-contiguous lots, each ``> 0``.
    out : numpy.ndarray of WALK_DTYPE
        C-contiguous, writeable, at least ``len(qtys)`` records; record ``i`` receives the
        walk of ``qtys[i]`` (same values as ``walk``).
    params : WalkParams, optional
        As for ``walk``.

    Returns
    -------
    int
        Records written (``len(qtys)``).

    Raises
    ------
    TypeError
        ``out`` is not an array of ``WALK_DTYPE``.
    ValueError
        Bad side, a ``qtys`` entry ``<= 0`` (index named), ``out`` too short or not
        contiguous, or an empty walked side. Nothing is written then.
    RuntimeError
        Out-of-sync book with ``params.require_in_sync``.
    """
    cdef WalkParams p = _DEFAULT if params is None else params
    cdef Py_ssize_t n = qtys.shape[0]
    cdef Py_ssize_t i
    cdef SlipCtx ctx
    cdef SlipWalk[::1] o
    cdef int st
    if not isinstance(out, np.ndarray) or out.dtype != WALK_DTYPE:
        raise TypeError(f"out must be a numpy array of WALK_DTYPE, was "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    if out.ndim != 1 or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a 1-d, C-contiguous, writeable array")
    if out.shape[0] < n:
        raise ValueError(f"out has {out.shape[0]} records, qtys has {n}")
    for i in range(n):
        if qtys[i] <= 0:
            raise ValueError(f"qtys[{i}] must be > 0, was {qtys[i]}")
    st = _slip_ctx(book, side, &p.c, &ctx)
    if st != SLIP_OK:
        _raise(st, side, None)
    if n == 0:
        return 0
    o = out
    with nogil:
        for i in range(n):
            slip_walk(book, side, qtys[i], &p.c, &o[i])
    return n


def max_qty(OrderBook book not None, int side, double budget_bps,
            WalkParams params=None) -> int:
    """Largest quantity whose walk costs at most ``budget_bps`` (size for max slippage).

    The cost is ``WalkResult.cost_bps`` (fee and impact included, from the reference of
    ``params``), computed by the same routine as ``walk``: ``walk(book, side, q).cost_bps
    <= budget_bps`` for the returned ``q > 0``, and ``walk(book, side, q + 1).cost_bps >
    budget_bps`` unless ``q`` is the whole visible depth with the impact term disabled (the
    model prices no lot beyond the visible book then) or ``q`` is ``INT64_MAX``.

    Parameters
    ----------
    book : ext.book.OrderBook
        The book (not modified).
    side : int
        ``BUY`` (1) or ``SELL`` (-1).
    budget_bps : float
        Cost budget in bps (not NaN; may be negative, e.g. with a crossed book).
    params : WalkParams, optional
        As for ``walk``.

    Returns
    -------
    int
        Lots, ``>= 0`` (0: even one lot exceeds the budget).

    Raises
    ------
    ValueError
        Bad side, NaN budget, empty walked side, or no reference price (mid of a one-sided
        book, or a reference ``<= 0``).
    RuntimeError
        Out-of-sync book with ``params.require_in_sync``.
    """
    cdef WalkParams p = _DEFAULT if params is None else params
    cdef int64_t q = 0
    cdef int st = slip_max_qty(book, side, budget_bps, &p.c, &q)
    if st != SLIP_OK:
        _raise(st, side, budget_bps)
    return q
