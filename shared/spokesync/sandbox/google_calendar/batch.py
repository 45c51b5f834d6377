"""The multipart batch endpoint (`POST /batch/calendar/v3`)."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import json
import re
import secrets

from spokesync.sandbox.google_calendar.common import (
    ApiError,
)
from spokesync.sandbox.google_calendar.state import SandboxState


class BatchMixin(SandboxState):
    # ---------------------------------------------------------------- batch

    def batch(self, content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/mixed") or not match:
            err = ApiError(400, "badContent", "Batch requests must be multipart/mixed with a boundary.")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        with self.lock:
            self.stats.batches += 1
            fault = self._fault("POST", "/batch/calendar/v3", "batch")
        if fault is not None:
            return fault.status, {"Content-Type": "application/json"}, json.dumps(fault.body()).encode()
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        parts = message.get_payload() if message.is_multipart() else []
        if not isinstance(parts, list) or len(parts) > 1000:
            err = ApiError(400, "badContent", "Too many requests in one batch.")
            return 400, {"Content-Type": "application/json"}, json.dumps(err.body()).encode()
        boundary = "batch_" + secrets.token_hex(12)
        out = []
        for part in parts:
            if not isinstance(part, email.message.Message):
                continue
            content_id = part.get("Content-ID", "")
            payload = part.get_payload(decode=False)
            if not isinstance(payload, str):
                continue
            raw = payload.replace("\r\n", "\n")
            head, _, sub_body = raw.partition("\n\n")
            lines = head.split("\n")
            request_line = lines[0].split(" ")
            sub_headers = {"authorization": headers.get("authorization", "")}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    sub_headers[name.strip().lower()] = value.strip()
            resp_headers: dict[str, str]
            if len(request_line) < 2:
                status, resp_headers, resp_body = 400, {}, b""
            else:
                status, resp_headers, resp_body = self.handle(request_line[0], request_line[1], sub_headers,
                                                              sub_body.encode())
            reason = _REASONS.get(status, "")
            lines_out = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in resp_headers.items()]
            lines_out.append(f"Content-Length: {len(resp_body)}")
            cid = content_id[1:-1] if content_id.startswith("<") else content_id
            out.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
                       + "\r\n".join(lines_out) + "\r\n\r\n" + resp_body.decode() + "\r\n")
        payload = ("".join(out) + f"--{boundary}--\r\n").encode()
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, payload


_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 410: "Gone", 412: "Precondition Failed", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


