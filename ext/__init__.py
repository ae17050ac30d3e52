"""Slipstream's compiled hot path (Cython over numpy buffers).

Modules
-------
scaled
    Exact decimal text <-> scaled int64 conversion (the parsers' number core).

Every compiled module ships a ``.pyi`` stub beside it (checked against the compiled
module by ``make lint`` and the test suite); ``.pxd`` files are the C-level contracts other
Cython modules cimport.
"""

from __future__ import annotations
