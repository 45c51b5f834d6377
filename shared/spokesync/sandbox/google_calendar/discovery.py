"""Request validation against Calendar API v3's published discovery document.

The document is the one google-api-python-client ships
(`googleapiclient/discovery_cache/documents/calendar.v3.json`, the same file
the client builds its requests from), so the discovery document, not our
connector, decides what a valid request is:

- the method is found from the HTTP verb and the path template;
- query parameters: known to the method or global (`parameters` at the top of
  the document), `type` (boolean "true"/"false", integer with `minimum` /
  `maximum`, `format: date-time` with an offset), `enum`, `repeated` (a
  non-repeated parameter given twice is refused) and `required`;
- the JSON body against the method's `request` schema: known properties only,
  each with its declared type (`$ref`, `object` with `properties` or
  `additionalProperties`, `array` with `items`, `string`, `integer`
  (int32 range), `boolean`, `number`, `any`); JSON null is accepted anywhere
  (Google's patch semantics: null clears a field).

Errors use Google's error body (`error.errors[].location` / `locationType`,
see "Handle API errors", developers.google.com/calendar/api/guides/errors).
Unknown body properties: Google's documentation does not say whether it
ignores or refuses them; we refuse them so that a typo in the connector
cannot pass unnoticed (stricter than Google, never more lenient).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from spokesync.sandbox.google_calendar.common import ApiError

_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_UINT32 = (0, 2 ** 32 - 1)
_DOC: dict[str, Any] | None = None
_LOCK = threading.RLock()


def discovery_document() -> dict[str, Any]:
    """calendar.v3.json as shipped with google-api-python-client (loaded once)."""
    global _DOC
    if _DOC is None:
        with _LOCK:
            if _DOC is None:
                import googleapiclient

                path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
                _DOC = json.loads(path.read_text())
    return _DOC


@dataclass(frozen=True)
class Method:
    id: str  # e.g. "calendar.events.insert"
    http_method: str
    pattern: re.Pattern[str]
    literal_segments: int
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        """`events.insert`, `calendarList.list`, ..."""
        return self.id.split(".", 1)[1]


def _methods(doc: dict[str, Any]) -> list[Method]:
    out: list[Method] = []

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for spec in (resource.get("methods") or {}).values():
                template = spec["path"]
                regex = "^/" + re.escape(doc["servicePath"]) + re.sub(
                    r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(template)) + "$"
                literal = sum(1 for seg in template.split("/") if not seg.startswith("{"))
                out.append(Method(spec["id"], spec["httpMethod"], re.compile(regex), literal, spec))
            walk(resource.get("resources") or {})

    walk(doc["resources"])
    # Literal paths win over templated ones (events/watch before events/{eventId}).
    out.sort(key=lambda m: -m.literal_segments)
    return out


class Validator:
    """Validates one API call against the discovery document."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        self.doc = doc or discovery_document()
        self.schemas: dict[str, Any] = self.doc["schemas"]
        self.global_params: dict[str, Any] = self.doc.get("parameters") or {}
        self.methods = _methods(self.doc)

    def method_for(self, http_method: str, path: str) -> tuple[Method, dict[str, str]] | None:
        allowed = False
        for method in self.methods:
            match = method.pattern.match(path)
            if match is None:
                continue
            allowed = True
            if method.http_method == http_method:
                return method, dict(match.groupdict())
        if allowed:
            raise ApiError(405, "httpMethodNotAllowed", f"HTTP method {http_method} is not supported by this URL")
        return None

    # ---------------------------------------------------------------- parameters

    def check_parameters(self, method: Method, query: dict[str, list[str]]) -> None:
        specs = {**self.global_params, **(method.spec.get("parameters") or {})}
        for name, values in query.items():
            spec = specs.get(name)
            if spec is None or spec.get("location") == "path":
                raise ApiError(400, "invalidParameter", f"Unknown parameter: {name}",
                               location=name, location_type="parameter")
            if len(values) > 1 and not spec.get("repeated"):
                raise ApiError(400, "invalidParameter", f"Parameter {name} must not be repeated.",
                               location=name, location_type="parameter")
            for value in values:
                self._check_parameter_value(name, spec, value)
        for name, spec in specs.items():
            if spec.get("required") and spec.get("location") == "query" and name not in query:
                raise ApiError(400, "required", f"Required parameter: {name}", location=name,
                               location_type="parameter")

    @staticmethod
    def _check_parameter_value(name: str, spec: dict[str, Any], value: str) -> None:
        def bad() -> ApiError:
            return ApiError(400, "invalid", f"Invalid value for: {name}", location=name, location_type="parameter")

        kind = spec.get("type")
        if kind == "boolean" and value not in ("true", "false"):
            raise bad()
        if kind == "integer":
            try:
                number = int(value)
            except ValueError:
                raise bad() from None
            low = int(spec["minimum"]) if "minimum" in spec else _INT32[0]
            high = int(spec["maximum"]) if "maximum" in spec else _INT32[1]
            if not low <= number <= high:
                raise bad()
        if spec.get("format") == "date-time":
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise bad() from None
            if parsed.tzinfo is None:  # "Must be an RFC3339 timestamp with mandatory time zone offset"
                raise bad()
        if "enum" in spec and value not in spec["enum"]:
            raise bad()

    # ---------------------------------------------------------------- body

    def check_body(self, method: Method, body: Any) -> None:
        request = method.spec.get("request")
        if request is None:
            return
        if not isinstance(body, dict):
            raise ApiError(400, "parseError", "This API does not support parsing form-encoded input.")
        self._check_value(request, body, "")

    def check_response(self, method: Method, payload: Any) -> None:
        """Tests: a response body holds only the properties and types of the
        method's `response` schema (raises ApiError like a request would)."""
        response = method.spec.get("response")
        if response is not None:
            self._check_value(response, payload, "")

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"]]
        return schema

    def _check_value(self, schema: dict[str, Any], value: Any, where: str) -> None:
        if value is None:
            return
        schema = self._resolve(schema)
        kind = schema.get("type")

        def bad() -> ApiError:
            return ApiError(400, "invalid", f"Invalid value for: {where or 'body'}", location=where or "body",
                            location_type="other")

        if kind == "object":
            if not isinstance(value, dict):
                raise bad()
            properties = schema.get("properties")
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                path = f"{where}.{key}" if where else key
                if properties is not None and key in properties:
                    self._check_value(properties[key], item, path)
                elif extra is not None:
                    self._check_value(extra, item, path)
                else:
                    raise ApiError(400, "invalid", f"Invalid field: {path}", location=path, location_type="other")
        elif kind == "array":
            if not isinstance(value, list):
                raise bad()
            for n, item in enumerate(value):
                self._check_value(schema.get("items") or {}, item, f"{where}[{n}]")
        elif kind == "string":
            if not isinstance(value, str):
                raise bad()
            if schema.get("format") in ("int64", "uint64") and not re.fullmatch(r"-?\d+", value):
                raise bad()
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad()
            low, high = _UINT32 if schema.get("format") == "uint32" else _INT32
            if not low <= value <= high:
                raise bad()
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise bad()
        elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise bad()


_VALIDATOR: Validator | None = None


def validator() -> Validator:
    """The shared validator over the packaged document (built once)."""
    global _VALIDATOR
    if _VALIDATOR is None:
        with _LOCK:
            if _VALIDATOR is None:
                _VALIDATOR = Validator()
    return _VALIDATOR
