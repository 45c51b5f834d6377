"""The process-wide stop flag: set by a signal handler (SIGTERM in the local server and the
functions), read by every sync run at its next batch boundary (engine/runner.py).

Standard library only, and importing it loads no other engine module, so that
`lifecycle.install()` at a function's module load does not import the engine (cold start: the
first answer of `sync_spoke`/`scheduler` needs neither the planner nor the runner).
"""

from __future__ import annotations

import threading


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """The process is being stopped (SIGTERM): the run stops at its next batch,
    records itself as interrupted and releases its lease."""


STOPPING = threading.Event()


def request_stop() -> None:
    STOPPING.set()


def stop_requested() -> bool:
    return STOPPING.is_set()
