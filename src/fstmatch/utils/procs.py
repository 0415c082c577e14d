"""Worker processes that end with the process that started them."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Worker initialiser: on Linux, have the kernel send this process SIGTERM when its parent dies.

    A ``kill`` (SIGTERM) reaches only the parent of a process pool; without this its workers go on
    running their task (a study's seed: many minutes) and writing into the output folder, where a
    resumed run would meet them. Ctrl-C needs none of it (the terminal signals the whole group).
    Elsewhere (macOS, Windows) it does nothing.
    """
    parent = multiprocessing.parent_process()
    if not sys.platform.startswith("linux") or parent is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent.pid:  # the parent died before the request took effect
        os._exit(1)
