"""Keep freed memory for reuse: glibc malloc settings for long numerical runs.

A run allocates and frees the same few megabytes of numpy temporaries for
every block of replicates.  With glibc's default settings, freed memory at
the top of the heap is returned to the system (``M_TRIM_THRESHOLD``) and
arrays above an adaptive threshold are mapped afresh (``M_MMAP_THRESHOLD``),
so every block pays a page fault per 4 KiB it touches: on the 2-core VM of the
benchmarks about a fifth of a coin run's time, and more on two workers,
which fault in parallel.  :func:`keep_freed_memory` raises both thresholds
for the process (and so for the worker processes it forks).

``sim run`` calls it; the library does not, since it changes the whole
process.  Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Arrays below this come from the heap instead of fresh mappings.
MMAP_THRESHOLD = 64 << 20
#: Freed memory kept at the top of the heap before it is returned.
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process.

    Returns
    -------
    bool
        Whether the settings took effect (False where malloc is not glibc's).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
