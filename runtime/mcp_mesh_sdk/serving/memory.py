"""Give freed request bodies back to the system.

glibc raises its mmap threshold to the size of each large block freed (up to 32 MB), so
after a few 10 MB requests later ones come from the heap and per-thread arenas, which are
not returned: 60 concurrent 10 MB writes left 951 MB resident after they were done. A fixed
threshold keeps every block over MMAP_THRESHOLD in its own mapping, unmapped when freed
(measured: 8 concurrent 10 MB writes left 199 MB resident without it, 74 MB with it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's initial default

logger = logging.getLogger("mcp_mesh_sdk.serving")


def return_large_blocks_when_freed() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        logger.warning("could not fix the malloc mmap threshold; freed memory may stay held")
        return False
    return True
