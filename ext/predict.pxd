# cython: language_level=3
"""Online ridge regression of small fixed dimension: the C-level contract.

State is a plain C struct (:c:type:`RidgeState`) holding the exponentially weighted
normal equations ``A = sum_i lambda^(n-i) w_i z_i z_i'`` and ``b = sum_i lambda^(n-i) w_i
z_i y_i`` (``z`` is the feature vector with a trailing 1 when the model has an intercept),
the Cholesky factor of ``A + ridge * I`` and the solution ``coef``. The ridge term is
NOT forgotten, so ``A + ridge * I`` stays positive definite with smallest eigenvalue
``>= ridge`` however long the model runs (no covariance wind-up). See
``docs/slippage_model.md`` for why this information form is used instead of the
covariance-form recursive least squares update.

Cores, all ``noexcept nogil`` and shared by the scalar and batch Python entry points:

* ``ridge_predict(s, x)``: ``coef . x (+ intercept)``, ``O(d)``.
* ``ridge_accumulate(s, x, y, w)``: decay by the forgetting factor and add one weighted
  row, ``O(d^2)``; does not re-solve.
* ``ridge_solve(s)``: Cholesky of ``A + ridge * I`` and two triangular solves into
  ``coef``, ``O(d^3 / 6)`` (about 300 multiply-adds for 11 features).
"""

from libc.math cimport sqrt
from libc.stdint cimport int64_t

cimport cython

cdef enum:
    PREDICT_MAX_FEATURES = 16
    PREDICT_MAX_DIM = 17            # features + intercept
    PREDICT_MAX_CELLS = 289         # PREDICT_MAX_DIM ** 2


cdef struct RidgeState:
    int n_features                  # caller's features
    int dim                         # n_features + (1 if intercept else 0)
    bint intercept                  # last coordinate is the implicit constant 1
    double forgetting               # lambda in (0, 1]
    double ridge                    # > 0, added to the diagonal at solve time, never decayed
    double weight_sum               # sum_i lambda^(n-i) w_i
    int64_t n_updates               # rows accumulated
    double a[PREDICT_MAX_CELLS]     # lower triangle of A, row-major with stride dim
    double b[PREDICT_MAX_DIM]
    double chol[PREDICT_MAX_CELLS]  # lower Cholesky factor of A + ridge I, stride dim
    double coef[PREDICT_MAX_DIM]    # solution; coef[n_features] is the intercept


cdef inline double ridge_predict(const RidgeState* s, const double* x) noexcept nogil:
    """Prediction for the ``n_features`` values at ``x`` (contiguous doubles)."""
    cdef int i
    cdef double acc = s.coef[s.n_features] if s.intercept else 0.0
    for i in range(s.n_features):
        acc += s.coef[i] * x[i]
    return acc


cdef inline void ridge_accumulate(RidgeState* s, const double* x, double y,
                                  double w) noexcept nogil:
    """Forget (multiply by lambda) and add the row ``(x, y)`` with weight ``w``."""
    cdef int i, j, d = s.dim, nf = s.n_features
    cdef double lam = s.forgetting, wz, zi
    cdef double* row
    if lam != 1.0:
        for i in range(d):
            row = &s.a[i * d]
            for j in range(i + 1):
                row[j] *= lam
            s.b[i] *= lam
        s.weight_sum *= lam
    for i in range(d):
        zi = x[i] if i < nf else 1.0
        wz = w * zi
        s.b[i] += wz * y
        row = &s.a[i * d]
        for j in range(i + 1):
            row[j] += wz * (x[j] if j < nf else 1.0)
    s.weight_sum += w
    s.n_updates += 1


cdef inline int ridge_solve(RidgeState* s) noexcept nogil:
    """Solve ``(A + ridge I) coef = b`` by Cholesky; 0 on success.

    Returns -1 (``coef`` unchanged) if a pivot is not positive, which needs a non-finite
    input or a ridge below rounding of the data scale.
    """
    cdef int i, j, k, d = s.dim
    cdef double acc, piv
    cdef double* L = s.chol
    cdef double tmp[PREDICT_MAX_DIM]
    for i in range(d):
        for j in range(i + 1):
            acc = s.a[i * d + j]
            if i == j:
                acc += s.ridge
            for k in range(j):
                acc -= L[i * d + k] * L[j * d + k]
            if i == j:
                if not acc > 0.0:
                    return -1
                L[i * d + i] = sqrt(acc)
            else:
                L[i * d + j] = acc / L[j * d + j]
    # L t = b
    for i in range(d):
        acc = s.b[i]
        for k in range(i):
            acc -= L[i * d + k] * tmp[k]
        tmp[i] = acc / L[i * d + i]
    # L' coef = t
    for i in range(d - 1, -1, -1):
        acc = tmp[i]
        for k in range(i + 1, d):
            acc -= L[k * d + i] * tmp[k]
        tmp[i] = acc / L[i * d + i]
    for i in range(d):
        s.coef[i] = tmp[i]
    return 0


@cython.final
cdef class SlippageModel:
    cdef RidgeState st
    cdef tuple _feature_names
    cdef str _instrument
