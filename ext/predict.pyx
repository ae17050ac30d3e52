# cython: language_level=3, auto_pickle=False
"""Online linear model for slippage prediction: exponentially weighted ridge regression.

:class:`SlippageModel` keeps the weighted normal equations of a linear model with at most
``PREDICT_MAX_FEATURES`` (16) features plus an optional intercept, fixed at construction,
in a C struct (``ext/predict.pxd``). Every :meth:`~SlippageModel.update` forgets the past
by ``forgetting`` and re-solves ``(A + ridge I) coef = b`` by Cholesky (well under a
microsecond at 11 features); :meth:`~SlippageModel.predict` is a dot product. With
``forgetting=1`` the coefficients equal the batch ridge solution
``(Z'WZ + ridge I)^-1 Z'Wy`` over every row seen (``Z`` = features plus a column of ones).

Persistence is JSON (no pickle): :meth:`~SlippageModel.to_bytes` /
:meth:`~SlippageModel.from_bytes`, :meth:`~SlippageModel.save` /
:meth:`~SlippageModel.load`. The document is versioned (``format``, ``version``) and
carries the feature names and the instrument id; arrays are base64 of little-endian
float64, so a round trip is bit-exact.
"""

import base64
import json
import math
import os

import numpy as np

from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBuffer_Release, PyObject_GetBuffer
cimport numpy as cnp
from libc.math cimport isfinite
from libc.string cimport memset

cimport cython

MAX_FEATURES = PREDICT_MAX_FEATURES
FORMAT_NAME = "slipstream.slippage_model"
FORMAT_VERSION = 1


cdef inline bint _is_float64_format(const char* fmt) noexcept:
    # "d", "<d" or "=d" ("@d" too): native double on every platform we build for
    if fmt == NULL:
        return True
    if fmt[0] == b"d" and fmt[1] == 0:
        return True
    return (fmt[0] == b"<" or fmt[0] == b"=" or fmt[0] == b"@") and fmt[1] == b"d" \
        and fmt[2] == 0


cdef inline bint _all_finite(const double* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(p[i]):
            return False
    return True


cdef object _matrix(object X, int n_features, str name):
    """``X`` as a C-contiguous float64 2-D array with ``n_features`` columns (no copy if
    it already is one)."""
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, was {type(X).__name__}")
    if X.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, was {X.dtype}")
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n, {n_features}), was {X.shape}")
    return np.ascontiguousarray(X)


cdef object _vector(object v, Py_ssize_t n, str name):
    if not isinstance(v, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, was {type(v).__name__}")
    if v.dtype != np.float64:
        raise TypeError(f"{name} must have dtype float64, was {v.dtype}")
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), was {v.shape}")
    return np.ascontiguousarray(v)


cnp.import_array()


cdef inline const double* _plain_vector(object x, int n) noexcept:
    """Data of ``x`` if it is exactly a 1-d, C-contiguous, aligned, native float64
    ndarray of ``n`` values, else NULL (then the buffer protocol checks it). The pointer
    is valid while the caller holds ``x`` and the GIL. Exporting a buffer costs ~200 ns
    per call with numpy 2.4, more than the prediction itself."""
    cdef cnp.ndarray a
    if not cnp.PyArray_CheckExact(x):
        return NULL
    a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or cnp.PyArray_NDIM(a) != 1 \
            or cnp.PyArray_DIM(a, 0) != n or not cnp.PyArray_ISCARRAY_RO(a) \
            or not cnp.PyArray_ISNOTSWAPPED(a):
        return NULL
    return <const double*>cnp.PyArray_DATA(a)


cdef int _get_vector(object x, Py_buffer* view, int n) except -1:
    """Borrow ``x`` as ``n`` contiguous float64 (release with PyBuffer_Release)."""
    try:
        PyObject_GetBuffer(x, view, PyBUF_ND | PyBUF_FORMAT)
    except (TypeError, ValueError, BufferError):
        raise TypeError(
            f"x must be a C-contiguous float64 numpy.ndarray, was {type(x).__name__}"
        ) from None
    if view.itemsize != 8 or not _is_float64_format(view.format):
        PyBuffer_Release(view)
        raise TypeError("x must be a float64 buffer (numpy.ndarray of float64)")
    if view.ndim != 1 or view.shape[0] != n:
        PyBuffer_Release(view)
        raise ValueError(f"x must have shape ({n},)")
    return 0


def _b64(arr):
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f8").tobytes()).decode("ascii")


def _unb64(text, Py_ssize_t n, str name):
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"model field {name!r} is not base64: {exc}") from None
    if len(raw) != 8 * n:
        raise ValueError(f"model field {name!r} must hold {n} float64, held {len(raw)} bytes")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


@cython.final
cdef class SlippageModel:
    """Online linear model ``y ~ coef . x + intercept`` fitted by exponentially weighted ridge.

    Parameters
    ----------
    n_features : int
        Number of features, ``1 <= n_features <= 16``; fixed for the model's life.
    forgetting : float
        Factor ``lambda`` in ``(0, 1]`` applied to the accumulated statistics before each
        new row; the effective memory is about ``1 / (1 - lambda)`` rows. 1 keeps all rows.
    ridge : float
        Ridge penalty ``> 0`` added to the diagonal (intercept included) at every solve.
        It is not forgotten, so the system stays positive definite.
    fit_intercept : bool
        Append an implicit constant feature (the intercept).
    feature_names : sequence of str, optional
        One name per feature (default ``x0``, ``x1``, ...); stored with the model.
    instrument : str
        Instrument id the model belongs to (stored with the model).

    Notes
    -----
    :meth:`update` accumulates one row and re-solves (``O(d^3)``, below a microsecond at
    ``d = 12``); :meth:`fit` accumulates many rows and solves once. Both add to the
    current state; :meth:`reset` starts afresh. :meth:`fit` and :meth:`predict_many` run
    without the GIL: concurrent predictions are safe, but do not update a model while
    another thread uses it.
    """

    def __init__(self, int n_features, double forgetting=1.0, double ridge=1e-3,
                 bint fit_intercept=True, feature_names=None, str instrument=""):
        if n_features < 1 or n_features > PREDICT_MAX_FEATURES:
            raise ValueError(
                f"n_features must be in [1, {PREDICT_MAX_FEATURES}], was {n_features}")
        if not (forgetting > 0.0 and forgetting <= 1.0):
            raise ValueError(f"forgetting must be in (0, 1], was {forgetting}")
        if not (ridge > 0.0 and isfinite(ridge)):
            raise ValueError(f"ridge must be finite and > 0, was {ridge}")
        if feature_names is None:
            names = tuple(f"x{i}" for i in range(n_features))
        else:
            names = tuple(feature_names)
            if len(names) != n_features:
                raise ValueError(
                    f"feature_names must have {n_features} names, had {len(names)}")
            for nm in names:
                if not isinstance(nm, str) or not nm:
                    raise TypeError(f"feature names must be non-empty str, got {nm!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"feature_names must be distinct, were {list(names)}")
        memset(&self.st, 0, sizeof(RidgeState))
        self.st.n_features = n_features
        self.st.intercept = fit_intercept
        self.st.dim = n_features + (1 if fit_intercept else 0)
        self.st.forgetting = forgetting
        self.st.ridge = ridge
        self._feature_names = names
        self._instrument = instrument

    # ------------------------------------------------------------------ properties

    @property
    def n_features(self) -> int:
        """Number of features."""
        return self.st.n_features

    @property
    def fit_intercept(self) -> bool:
        """Whether the model has an intercept."""
        return bool(self.st.intercept)

    @property
    def forgetting(self) -> float:
        """Forgetting factor ``lambda``."""
        return self.st.forgetting

    @property
    def ridge(self) -> float:
        """Ridge penalty."""
        return self.st.ridge

    @property
    def n_updates(self) -> int:
        """Rows accumulated since construction or :meth:`reset`."""
        return self.st.n_updates

    @property
    def weight_sum(self) -> float:
        """Sum of the rows' weights, each discounted by ``lambda`` per later row."""
        return self.st.weight_sum

    @property
    def feature_names(self) -> tuple:
        """Feature names, in column order."""
        return self._feature_names

    @property
    def instrument(self) -> str:
        """Instrument id the model belongs to."""
        return self._instrument

    @property
    def coef(self):
        """Coefficients of the features (a new float64 array)."""
        out = np.empty(self.st.n_features, dtype=np.float64)
        cdef double[::1] o = out
        cdef int i
        for i in range(self.st.n_features):
            o[i] = self.st.coef[i]
        return out

    @property
    def intercept(self) -> float:
        """Intercept (0.0 without one)."""
        return self.st.coef[self.st.n_features] if self.st.intercept else 0.0

    # ------------------------------------------------------------------ fitting

    def reset(self) -> None:
        """Forget every row: coefficients back to 0."""
        cdef int n = self.st.n_features, d = self.st.dim
        cdef bint ic = self.st.intercept
        cdef double lam = self.st.forgetting, r = self.st.ridge
        memset(&self.st, 0, sizeof(RidgeState))
        self.st.n_features = n
        self.st.dim = d
        self.st.intercept = ic
        self.st.forgetting = lam
        self.st.ridge = r

    def update(self, x, double y, double weight=1.0) -> None:
        """Add one observation and re-solve.

        Parameters
        ----------
        x : numpy.ndarray of float64
            ``n_features`` values, C-contiguous.
        y : float
            Observed target.
        weight : float
            Row weight ``>= 0`` (e.g. for iteratively reweighted fits).

        Raises
        ------
        TypeError
            ``x`` is not a float64 buffer.
        ValueError
            Wrong length, or a non-finite value in ``x``, ``y`` or ``weight``.
        """
        cdef Py_buffer view
        cdef int rc
        if not (isfinite(y) and isfinite(weight) and weight >= 0.0):
            raise ValueError(f"y and weight must be finite, weight >= 0; were {y}, {weight}")
        _get_vector(x, &view, self.st.n_features)
        try:
            if not _all_finite(<const double*>view.buf, self.st.n_features):
                raise ValueError("x holds a non-finite value")
            ridge_accumulate(&self.st, <const double*>view.buf, y, weight)
            rc = ridge_solve(&self.st)
        finally:
            PyBuffer_Release(&view)
        if rc != 0:
            raise RuntimeError("ridge system is not positive definite (data scale vs ridge)")

    def fit(self, X, y, weights=None) -> None:
        """Add every row of ``X`` (in order, as repeated :meth:`update`) and solve once.

        Parameters
        ----------
        X : numpy.ndarray of float64, shape (n, n_features)
            Feature rows.
        y : numpy.ndarray of float64, shape (n,)
            Targets.
        weights : numpy.ndarray of float64, shape (n,), optional
            Row weights ``>= 0`` (default 1).

        Raises
        ------
        TypeError
            An argument is not a float64 ndarray.
        ValueError
            Shapes disagree, or a value is non-finite (or a weight negative).
        """
        Xc = _matrix(X, self.st.n_features, "X")
        cdef Py_ssize_t n = Xc.shape[0], i
        yc = _vector(y, n, "y")
        wc = np.ones(n, dtype=np.float64) if weights is None else _vector(weights, n, "weights")
        cdef const double[:, ::1] xv = Xc
        cdef const double[::1] yv = yc
        cdef const double[::1] wv = wc
        cdef int rc = 0
        cdef bint ok
        if n == 0:
            return
        with nogil:
            ok = _all_finite(&xv[0, 0], n * self.st.n_features) and _all_finite(&yv[0], n) \
                and _all_finite(&wv[0], n)
        if not ok:
            raise ValueError("X, y and weights must be finite")
        if (wc < 0.0).any():
            raise ValueError("weights must be >= 0")
        with nogil:
            for i in range(n):
                ridge_accumulate(&self.st, &xv[i, 0], yv[i], wv[i])
            rc = ridge_solve(&self.st)
        if rc != 0:
            raise RuntimeError("ridge system is not positive definite (data scale vs ridge)")

    # ------------------------------------------------------------------ prediction

    def predict(self, x) -> float:
        """Prediction for one feature vector.

        Parameters
        ----------
        x : numpy.ndarray of float64
            ``n_features`` values, C-contiguous (any float64 buffer).

        Returns
        -------
        float
            ``coef . x + intercept`` (NaN propagates).
        """
        cdef Py_buffer view
        cdef double r
        cdef const double* px = _plain_vector(x, self.st.n_features)
        if px != NULL:
            return ridge_predict(&self.st, px)
        _get_vector(x, &view, self.st.n_features)
        r = ridge_predict(&self.st, <const double*>view.buf)
        PyBuffer_Release(&view)
        return r

    def predict_many(self, X, out=None):
        """Predictions for every row of ``X`` (GIL released).

        Parameters
        ----------
        X : numpy.ndarray of float64, shape (n, n_features)
            Feature rows.
        out : numpy.ndarray of float64, shape (n,), optional
            Receives the predictions (C-contiguous); allocated when omitted.

        Returns
        -------
        numpy.ndarray
            ``out`` (or the new array).
        """
        Xc = _matrix(X, self.st.n_features, "X")
        cdef Py_ssize_t n = Xc.shape[0], i
        if out is None:
            out = np.empty(n, dtype=np.float64)
        else:
            _vector(out, n, "out")
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError("out must be C-contiguous and writeable")
        cdef const double[:, ::1] xv = Xc
        cdef double[::1] ov = out
        if n:
            with nogil:
                for i in range(n):
                    ov[i] = ridge_predict(&self.st, &xv[i, 0])
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict:
        """The model as a JSON-ready dict (format, version, names, instrument, state)."""
        cdef int d = self.st.dim, i, j
        a = np.zeros((d, d), dtype=np.float64)
        for i in range(d):
            for j in range(i + 1):
                a[i, j] = self.st.a[i * d + j]
        b = np.array([self.st.b[i] for i in range(d)], dtype=np.float64)
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "instrument": self._instrument,
            "feature_names": list(self._feature_names),
            "n_features": self.st.n_features,
            "fit_intercept": bool(self.st.intercept),
            "forgetting": self.st.forgetting,
            "ridge": self.st.ridge,
            "n_updates": self.st.n_updates,
            "weight_sum": self.st.weight_sum,
            "coef": [float(self.st.coef[i]) for i in range(d)],
            "xtx_lower": _b64(a[np.tril_indices(d)]),
            "xty": _b64(b),
        }

    def to_bytes(self) -> bytes:
        """Serialize to UTF-8 JSON (see :meth:`from_bytes`)."""
        return json.dumps(self.to_dict(), sort_keys=True).encode("utf-8")

    @staticmethod
    def from_dict(doc) -> SlippageModel:
        """Rebuild a model from :meth:`to_dict` output; validates format and version."""
        if not isinstance(doc, dict):
            raise ValueError("a model document must be a JSON object")
        if doc.get("format") != FORMAT_NAME:
            raise ValueError(f"not a slippage model document (format {doc.get('format')!r})")
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported slippage model version {doc.get('version')!r} "
                f"(this build reads {FORMAT_VERSION})")
        cdef SlippageModel model
        try:
            if not isinstance(doc["fit_intercept"], bool):
                raise TypeError("fit_intercept must be a JSON boolean")
            if not isinstance(doc["instrument"], str):
                raise TypeError("instrument must be a JSON string")
            model = SlippageModel(
                int(doc["n_features"]), float(doc["forgetting"]), float(doc["ridge"]),
                doc["fit_intercept"], list(doc["feature_names"]), doc["instrument"])
            n_updates = int(doc["n_updates"])
            weight_sum = float(doc["weight_sum"])
            xtx, xty = doc["xtx_lower"], doc["xty"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed slippage model document: {exc!r}") from None
        cdef int d = model.st.dim, i, j, k = 0
        tri = _unb64(xtx, d * (d + 1) // 2, "xtx_lower")
        b = _unb64(xty, d, "xty")
        if not (np.isfinite(tri).all() and np.isfinite(b).all() and math.isfinite(weight_sum)):
            raise ValueError("slippage model document holds non-finite values")
        if n_updates < 0 or weight_sum < 0:
            raise ValueError(
                f"n_updates and weight_sum must be >= 0, were {n_updates}, {weight_sum}")
        for i in range(d):
            for j in range(i + 1):
                model.st.a[i * d + j] = tri[k]
                k += 1
            model.st.b[i] = b[i]
        model.st.n_updates = n_updates
        model.st.weight_sum = weight_sum
        if n_updates and ridge_solve(&model.st) != 0:
            raise ValueError("slippage model document: system is not positive definite")
        return model

    @staticmethod
    def from_bytes(data) -> SlippageModel:
        """Rebuild a model from :meth:`to_bytes` output.

        Raises
        ------
        ValueError
            Not JSON, another format, an unsupported version or inconsistent fields.
        """
        try:
            doc = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"slippage model is not UTF-8 JSON: {exc}") from None
        return SlippageModel.from_dict(doc)

    def save(self, path) -> None:
        """Write :meth:`to_bytes` to ``path`` (atomically: temp file then rename)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(self.to_bytes())
        os.replace(tmp, path)

    @staticmethod
    def load(path) -> SlippageModel:
        """Read a model written by :meth:`save`."""
        with open(os.fspath(path), "rb") as fh:
            return SlippageModel.from_bytes(fh.read())

    def __repr__(self) -> str:
        return (f"SlippageModel(n_features={self.st.n_features}, "
                f"forgetting={self.st.forgetting!r}, ridge={self.st.ridge!r}, "
                f"instrument={self._instrument!r}, n_updates={self.st.n_updates})")
