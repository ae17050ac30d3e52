"""Build of the compiled ``ext`` package (everything else lives in pyproject.toml).

Environment switches
--------------------
SLIPSTREAM_DEBUG=1     bounds/wraparound/initialized checks on, ``-O0 -g``, line tracing.
SLIPSTREAM_ANNOTATE=1  write Cython's annotated HTML next to each ``.pyx`` (``make annotate``).
SLIPSTREAM_NATIVE=1    ``-march=native`` (local benchmarking only; never for wheels).
SLIPSTREAM_ONLY=a,b    build only these ``ext`` modules (development; a wheel builds all).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _flag("SLIPSTREAM_DEBUG")
ANNOTATE = _flag("SLIPSTREAM_ANNOTATE")
NATIVE = _flag("SLIPSTREAM_NATIVE")

directives = {
    "language_level": 3,
    "embedsignature": True,
    "binding": True,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "overflowcheck": False,
    "infer_types": True,
    "linetrace": DEBUG,
    "profile": False,
    "autotestdict": False,
}

compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0", "-fno-strict-aliasing"]
if NATIVE:
    compile_args.append("-march=native")
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

here = Path(__file__).parent
only = {m.strip() for m in os.environ.get("SLIPSTREAM_ONLY", "").split(",") if m.strip()}
extensions = [
    Extension(
        f"ext.{pyx.stem}",
        [str(pyx.relative_to(here))],
        include_dirs=[np.get_include(), "ext"],
        define_macros=macros,
        extra_compile_args=compile_args,
    )
    for pyx in sorted((here / "ext").glob("*.pyx"))
    if not only or pyx.stem in only
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        # debug C files live apart, so a later release build never reuses them
        build_dir="build/cython-debug" if DEBUG else None,
        nthreads=int(os.environ.get("SLIPSTREAM_BUILD_JOBS", "0")),
    ),
)
