"""Memory reuse on CPU for processes that evaluate a model step after step.

glibc's malloc hands blocks above its mmap threshold back to the system when they are freed, so
each step's large tensors fault their pages in again: Facet "mp" on 216 to 1000 Si atoms took 12 000
to 27 000 page faults a step on the 2-core VM, 6 to 20% of the step's time. :func:`keep_freed_memory`
raises the mmap threshold to 32 MiB (glibc's largest) and keeps freed memory in the heap for the next
step (trim threshold, top pad): under 1000 faults a step. The process keeps its peak heap instead
of returning it. The calculator, torch-sim's model and LAMMPS's pair_style mlip call it; set
``MLIP_MALLOC=system`` to leave malloc as it is. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # bytes: glibc's largest on 64-bit
TOP_PAD = 64 << 20
_tuned = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for step-after-step evaluation (once a process); whether it is tuned."""
    global _tuned
    if _tuned or os.environ.get("MLIP_MALLOC", "").lower() == "system" or platform.libc_ver()[0] != "glibc":
        return _tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _tuned = all(libc.mallopt(option, value) == 1 for option, value in
                 ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 2**31 - 1), (M_TOP_PAD, TOP_PAD)))
    return _tuned
