# cython: language_level=3
"""Shared C types of the compiled layer (cimported, never imported)."""

from libc.stdint cimport int64_t, uint64_t, int32_t, uint8_t

# Prices are integer ticks, sizes integer lots, times integer nanoseconds.
ctypedef int64_t ticks_t
ctypedef int64_t lots_t
ctypedef int64_t ns_t
