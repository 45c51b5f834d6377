"""Stopping cleanly: SIGTERM (and SIGINT where it is not Ctrl-C's KeyboardInterrupt)
makes every sync run of the process stop at its next batch, record itself as
interrupted and release its spoke's lease, so that the next run can start at
once instead of waiting for the lease to expire.

`install(raise_in_main=True)` is for processes whose main thread runs syncs or
a server loop (the CLI, `spokesync serve`): the signal also raises
KeyboardInterrupt there. The functions keep their server's own handler, which
is chained after ours.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from spokesync.engine.stopping import Interrupted, request_stop  # not the engine: cold start

__all__ = ["Interrupted", "install"]

_INSTALLED: set[int] = set()


def install(raise_in_main: bool = False, signals: tuple[int, ...] = (signal.SIGTERM,)) -> bool:
    """Install the stop handler; False when this thread cannot (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in signals:
        if signum in _INSTALLED:
            continue
        previous = signal.getsignal(signum)

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            request_stop()
            if callable(previous):
                previous(number, frame)
            elif raise_in_main:
                raise KeyboardInterrupt

        signal.signal(signum, handler)
        _INSTALLED.add(signum)
    return True
