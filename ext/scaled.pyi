"""Exact conversion between decimal text and scaled int64 integers."""

import numpy as np
import numpy.typing as npt

MAX_SCALE: int

def to_scaled(value: str | bytes, scale: int) -> int: ...
def decimals_needed(value: str | bytes) -> int: ...
def to_scaled_many(
    buf: npt.NDArray[np.uint8] | bytes | bytearray,
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    scale: int,
    out: npt.NDArray[np.int64],
) -> int: ...
def format_scaled(value: int, scale: int) -> str: ...
def quoted_scaled(
    buf: bytes | bytearray | memoryview, start: int, scale: int, loop_only: bool = False
) -> tuple[int, int] | None: ...
