"""Caps on what a server may send back: response bodies are bounded, decompressed bytes included.

A hostile or intercepted server (an Exchange URL an administrator typed, a
Graph or Google endpoint behind a TLS-inspecting proxy) must not be able to
make spokesync read a 300 MB body or inflate a 1 MB gzip bomb into
gigabytes: the functions run with 512 MiB and every retry would repeat it.

- `Content-Length` is checked first: a declared body over the cap is refused
  before a byte of it is read.
- The body is read in chunks and decompressed here, by this module, with
  `zlib.decompressobj(...).decompress(data, max_length)`, so no single step
  produces more than one chunk; decompressed bytes are counted while
  reading and the read stops at the cap.
- Only `gzip` and `deflate` are asked for (`Accept-Encoding`); any other
  encoding the server sends anyway is refused.
- The error (`ResponseTooLarge`, a `ConnectorError`) names the server and
  says what to do.

Transports: `CappedAdapterMixin` for requests' `HTTPAdapter` (exchangelib, a
future Graph client on requests or msal's session) and `capped_httplib2` for
httplib2 (google-api-python-client). Both use `read_capped` underneath.
"""

from __future__ import annotations

import http.client
import zlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from spokesync.ports import ConnectorError

DEFAULT_MAX_RESPONSE_BYTES = 32 << 20  # the largest EWS page or Calendar page seen is a few MB
CHUNK = 64 << 10
ACCEPTED_ENCODINGS = "gzip, deflate"


class ResponseTooLarge(ConnectorError):
    """A server sent (or announced) more than the cap."""


class UnreadableResponse(ConnectorError):
    """A server sent a body in an encoding spokesync did not ask for."""


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


def too_large(server: str, limit: int, declared: int | None = None) -> ResponseTooLarge:
    what = f"announced a {_mb(declared)} answer" if declared else "sent an answer"
    counted = "" if declared else " (counted after decompression)"
    return ResponseTooLarge(f"{server} {what} larger than the {_mb(limit)} spokesync reads{counted}; nothing was "
                            "changed. Check that the URL points at the right server (a misconfigured or hostile "
                            "server, or a proxy in between, can do this)")


def server_name(url: str) -> str:
    host = urlsplit(url).hostname or url
    return f"the server {host}"


def check_declared(headers: Any, limit: int, server: str) -> None:
    """Refuse a `Content-Length` over the cap before reading (headers: any case-insensitive mapping)."""
    raw = headers.get("Content-Length") or headers.get("content-length")
    if raw is None:
        return
    try:
        declared = int(str(raw).split(",")[0].strip())
    except ValueError:
        return  # the HTTP library refuses a malformed length itself
    if declared > limit:
        raise too_large(server, limit, declared)


def _decoder(encoding: str, server: str) -> Any:
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()  # zlib-wrapped (RFC 9110); a raw stream is retried in read_capped
    raise UnreadableResponse(f"{server} answered in an encoding spokesync did not ask for ({encoding}); "
                             "check the URL and any proxy in between")


def read_capped(chunks: Iterable[bytes], encoding: str, limit: int, server: str,
                chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Decoded body pieces (each at most `chunk_size` bytes), raising ResponseTooLarge past `limit`."""
    decoder = _decoder(encoding, server)
    received = produced = 0
    first = True
    for chunk in chunks:
        if not chunk:
            continue
        received += len(chunk)
        if received > limit:
            raise too_large(server, limit)
        if decoder is None:
            produced += len(chunk)
            if produced > limit:
                raise too_large(server, limit)
            yield chunk
            continue
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, chunk_size)
            except zlib.error:
                if not (first and encoding.strip().lower() == "deflate"):
                    raise UnreadableResponse(f"{server} sent a compressed answer that does not decompress") \
                        from None
                decoder = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
                first = False
                continue
            first = False
            produced += len(out)
            if produced > limit:
                raise too_large(server, limit)
            if out:
                yield out
            data = decoder.unconsumed_tail
    if decoder is not None:
        rest = decoder.flush(chunk_size)
        produced += len(rest)
        if produced > limit:
            raise too_large(server, limit)
        if rest:
            yield rest


# ------------------------------------------------------------------ requests (exchangelib, Graph)


class _CappedBody:
    """The body of a urllib3 response as requests reads it (`raw.stream`, `raw.read`), decoded and bounded
    by `read_capped`. It is installed on the urllib3 response itself (`install`), which stays a urllib3
    HTTPResponse: requests_ntlm reads the TLS certificate from it for channel binding (Extended Protection)."""

    def __init__(self, raw: Any, limit: int, server: str) -> None:
        self._raw = raw
        self._read_raw = raw.read  # the class's own method, before `install` shadows it
        self._limit = limit
        self._server = server
        self._pieces: Iterator[bytes] | None = None
        self._left = b""

    def install(self) -> None:
        self._raw.stream = self.stream
        self._raw.read = self.read

    def _iter(self) -> Iterator[bytes]:
        if self._pieces is None:
            encoding = self._raw.headers.get("Content-Encoding", "")
            undecoded = iter(lambda: self._read_raw(CHUNK, decode_content=False), b"")
            self._pieces = read_capped(undecoded, encoding, self._limit, self._server)
        return self._pieces

    def stream(self, amt: int | None = CHUNK, decode_content: bool | None = True) -> Iterator[bytes]:
        if self._left:
            left, self._left = self._left, b""
            yield left
        yield from self._iter()

    def read(self, amt: int | None = None, decode_content: bool | None = True, **_: Any) -> bytes:
        out = bytearray(self._left)
        self._left = b""
        for piece in self._iter():
            out += piece
            if amt is not None and len(out) >= amt:
                break
        if amt is not None and len(out) > amt:
            self._left = bytes(out[amt:])
            del out[amt:]
        return bytes(out)


class CappedAdapterMixin:
    """Mix into a `requests.adapters.HTTPAdapter` subclass: every response is bounded (module doc)."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        request.headers["Accept-Encoding"] = ACCEPTED_ENCODINGS
        return super().send(request, *args, **kwargs)  # type: ignore[misc]

    def build_response(self, req: Any, resp: Any) -> Any:
        server = server_name(req.url)
        check_declared(resp.headers, self.max_response_bytes, server)
        _CappedBody(resp, self.max_response_bytes, server).install()
        return super().build_response(req, resp)  # type: ignore[misc]


# ------------------------------------------------------------------ httplib2 (Google)


def _capped_response_class(limit: int, server: str) -> type[http.client.HTTPResponse]:
    class CappedHTTPResponse(http.client.HTTPResponse):
        def begin(self) -> None:
            super().begin()
            check_declared(self.msg, limit, server)

        def read(self, amt: int | None = None) -> bytes:
            if amt is not None:
                return super().read(amt)
            encoding = self.msg.get("Content-Encoding", "")
            raw = iter(lambda: super(CappedHTTPResponse, self).read(CHUNK), b"")
            body = b"".join(read_capped(raw, encoding, limit, server))
            if encoding:
                # decoded here: httplib2 must not decode it (without a bound) a second time
                del self.msg["Content-Encoding"]
                del self.msg["Content-Length"]
                self.msg["Content-Length"] = str(len(body))
            return body

    return CappedHTTPResponse


def capped_httplib2(server_label: str, limit: int = DEFAULT_MAX_RESPONSE_BYTES, **kwargs: Any) -> Any:
    """An `httplib2.Http` whose responses are bounded; errors name `server_label` and the host."""
    import httplib2

    classes: dict[str, type[http.client.HTTPResponse]] = {}

    def response_class(host: str) -> type[http.client.HTTPResponse]:
        if host not in classes:
            classes[host] = _capped_response_class(limit, f"{server_label} ({host})")
        return classes[host]

    def connection(base: type) -> type:
        class Capped(base):  # type: ignore[valid-type, misc]
            def getresponse(self) -> Any:
                self.response_class = response_class(str(self.host))  # per host: the error names it
                return super().getresponse()

        return Capped

    plain, tls = connection(httplib2.HTTPConnectionWithTimeout), connection(httplib2.HTTPSConnectionWithTimeout)

    class CappedHttp(httplib2.Http):  # type: ignore[misc]
        def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None,
                    redirections: int = httplib2.DEFAULT_MAX_REDIRECTS, connection_type: Any = None) -> Any:
            headers = dict(headers or {})
            headers["accept-encoding"] = ACCEPTED_ENCODINGS
            if connection_type is None:
                connection_type = tls if uri.lower().startswith("https") else plain
            return super().request(uri, method, body, headers, redirections, connection_type)

    return CappedHttp(**kwargs)
