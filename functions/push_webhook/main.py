"""push_webhook: the public HTTP function Google Calendar push notifications reach.

Thin on purpose: read the headers, let `spokesync.service.push` decide,
answer. Nothing heavy is imported at module load; the Context (store, queue)
is built on the first request and reused by the instance. Bad input gets a
4xx (Google retries 5xx); only a failure of our own backends gives a 5xx.
"""

from __future__ import annotations

from typing import Any


def push_webhook(request: Any) -> tuple[str, int, dict[str, str]]:
    if request.method != "POST":
        return "method not allowed\n", 405, {"Allow": "POST", "Content-Type": "text/plain"}
    from spokesync.bootstrap import get_context
    from spokesync.service.push import handle_notification

    answer = handle_notification(get_context(), dict(request.headers))
    return answer.message + "\n", answer.status, {"Content-Type": "text/plain"}
