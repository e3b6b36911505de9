"""Freed memory stays in the process for the next step instead of going back to the OS.

A training step allocates and frees the same large arrays every time (gates, state
sequences, gradients: ~30 MB per LSTM call at (B,T,F,H) = (64,100,64,128)). glibc hands
arrays this big straight back to the kernel (munmap, or trimming the heap top), so every step
pays page faults to get fresh zeroed pages again; on the 2-vCPU VM the project is measured
on, whose balloon driver also returns freed pages to the host, that was 8-10 ms of a 27 ms
LSTM training step (bench/RESULTS.md). PyTorch's GPU caching allocator, jemalloc and
tcmalloc keep freed memory for reuse for the same reason. Here glibc is told to serve
allocations up to 256 MB from its heap and to keep up to 1 GB of free heap before trimming,
so the process holds at most that much beyond what it uses.

Applied once at `import engine` on Linux with glibc; SEQFUSE_MALLOC=default leaves glibc's
settings alone. Elsewhere (macOS, musl, Windows) nothing changes.
"""
from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
SETTINGS = {_M_MMAP_THRESHOLD: 256 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20}


def keep_freed_memory() -> bool:
    """Apply SETTINGS with glibc's mallopt; True when they took effect."""
    if os.environ.get("SEQFUSE_MALLOC", "").lower() == "default":
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, ValueError, OSError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())


KEPT = keep_freed_memory()
