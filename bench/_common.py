"""Shared helpers for benchmarks: measurement, not assertions."""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Benchmarks run from the repository root; make the package importable without installing it.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT / "shared") not in sys.path:
    sys.path.insert(0, str(_ROOT / "shared"))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * resource.getpagesize() / 2**20, 1)


@contextmanager
def measured() -> Iterator[dict[str, Any]]:
    """Wall time and peak Python heap (tracemalloc) of the block, in a dict filled on exit."""
    out: dict[str, Any] = {}
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield out
    finally:
        out["wall_s"] = round(time.perf_counter() - started, 3)
        out["peak_heap_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - started, 3)
