"""Freed heap memory given back to the system: glibc keeps what a process frees in its
arenas (one per thread that allocated), so a process that once held a large photo's
arrays or a model run's tensors would otherwise stay at that size. The dev server calls
this after large requests, `spiritnet_tf.animate` after the model's run and after each
full-resolution frame of a large photo (docs/benchmarks.md, "Peak memory")."""

import ctypes
import ctypes.util
import functools

__all__ = ["malloc_trim", "release_freed_memory"]


@functools.lru_cache(maxsize=None)
def malloc_trim():
    """glibc's ``malloc_trim`` as a Python callable, or None (another C library)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory():
    """``malloc_trim(0)``: hands the free pages of every heap arena back to the system
    (about 10-20 ms after a 4000x3000 frame). Returns False where the C library has no
    ``malloc_trim`` (nothing done), else True."""
    trim = malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
