"""push_webhook: the public HTTP function push notifications reach.

Thin on purpose: read the request, let the service decide, answer. Google Calendar
notifications arrive at the root (headers only: `spokesync.service.push`); Microsoft Graph
change notifications at `/graph` and its lifecycle notifications at `/graph/lifecycle`
(`spokesync.service.graph_push`). Nothing heavy is imported at module load; the Context
(store, queue) is built on the first request and reused by the instance. Bad input gets a 4xx
(both services retry 5xx); only a failure of our own backends gives a 5xx.
"""

from __future__ import annotations

from typing import Any

MAX_BODY = 256 * 1024


def push_webhook(request: Any) -> tuple[str, int, dict[str, str]]:
    if request.method != "POST":
        return "method not allowed\n", 405, {"Allow": "POST", "Content-Type": "text/plain"}
    from spokesync.bootstrap import get_context

    path = (request.path or "/").rstrip("/")
    if path.endswith("/graph") or path.endswith("/graph/lifecycle"):
        from spokesync.service import graph_push

        if (request.content_length or 0) > MAX_BODY:
            return "notification too large\n", 413, {"Content-Type": "text/plain"}
        body = request.stream.read(MAX_BODY + 1)  # never more than the cap, whatever the sender says
        reply = graph_push.handle(get_context(), dict(request.args), body, lifecycle=path.endswith("/lifecycle"))
        return reply.body, reply.status, {"Content-Type": reply.content_type}
    from spokesync.service.push import handle_notification

    answer = handle_notification(get_context(), dict(request.headers))
    return answer.message + "\n", answer.status, {"Content-Type": "text/plain"}
