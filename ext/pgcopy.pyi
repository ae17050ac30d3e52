"""Read a ``COPY ... TO STDOUT`` stream from libpq in one loop without the GIL."""

from typing import final

import numpy as np
import numpy.typing as npt

COPY_DONE: int
COPY_FAILED: int
COPY_CONNECTION_LOST: int

@final
class CopyDrain:
    def __init__(
        self, get_copy_data: int, free_mem: int, consume_input: int, socket: int
    ) -> None: ...
    def drain(self, conn: int) -> tuple[int, npt.NDArray[np.uint8]]: ...
