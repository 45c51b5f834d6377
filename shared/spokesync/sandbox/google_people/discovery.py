"""Request validation against People API v1's published discovery document.

The document is the one google-api-python-client ships
(`googleapiclient/discovery_cache/documents/people.v1.json`, the file the
client builds its requests from). The checks are the Calendar sandbox's
(`sandbox.google_calendar.discovery.Validator`: parameters by type, enum,
repetition; the JSON body against the method's `request` schema, unknown
properties refused), over this document, plus what only this API has:

- methods are found by their `flatPath` (`v1/people/{peopleId}:updateContact`),
  since `path` uses reserved expansion (`v1/{+resourceName}`); the path
  parameter's `pattern` (`^people/[^/]+$`) is checked;
- field masks (`personFields`, `updatePersonFields`, `readMask`,
  `updateMask`, `groupFields`): each path must be one of the "Valid values"
  the parameter's description lists (the document gives them only there).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from spokesync.sandbox.google_calendar.common import ApiError
from spokesync.sandbox.google_calendar.discovery import Method, Validator

_DOC: dict[str, Any] | None = None
_LOCK = threading.RLock()
_VALID_VALUES = re.compile(r"Valid (?:values|fields) are:((?:\s*\*\s*\w+)+)")


def discovery_document() -> dict[str, Any]:
    """people.v1.json as shipped with google-api-python-client (loaded once)."""
    global _DOC
    if _DOC is None:
        with _LOCK:
            if _DOC is None:
                import googleapiclient

                path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "people.v1.json"
                _DOC = json.loads(path.read_text())
    return _DOC


def valid_mask_paths(description: str) -> frozenset[str]:
    """The "Valid values are: * a * b" list of a field-mask description."""
    match = _VALID_VALUES.search(description)
    return frozenset(re.findall(r"\*\s*(\w+)", match.group(1))) if match else frozenset()


class PeopleValidator(Validator):
    def __init__(self) -> None:
        doc = discovery_document()
        super().__init__(doc)
        self.methods = self._flat_methods(doc)

    @staticmethod
    def _flat_methods(doc: dict[str, Any]) -> list[Method]:
        out: list[Method] = []

        def walk(resources: dict[str, Any]) -> None:
            for resource in resources.values():
                for spec in (resource.get("methods") or {}).values():
                    template = spec.get("flatPath") or spec["path"]
                    regex = "^/" + re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/:]+)",
                                          re.escape(template)) + "$"
                    literal = sum(1 for seg in re.split(r"[/:]", template) if not seg.startswith("{"))
                    out.append(Method(spec["id"], spec["httpMethod"], re.compile(regex), literal, spec))
                walk(resource.get("resources") or {})

        walk(doc["resources"])
        out.sort(key=lambda m: -m.literal_segments)
        return out

    def mask_paths(self, method: Method, name: str, *, in_body: bool = False) -> frozenset[str]:
        """The valid paths of field mask `name` (a query parameter, or a request-body property)."""
        if in_body:
            schema = self._resolve(method.spec["request"])
            description = str((schema.get("properties") or {}).get(name, {}).get("description", ""))
        else:
            description = str((method.spec.get("parameters") or {}).get(name, {}).get("description", ""))
        return valid_mask_paths(description)

    def check_mask(self, method: Method, name: str, value: str, *, in_body: bool = False) -> list[str]:
        valid = self.mask_paths(method, name, in_body=in_body)
        paths = [p.strip() for p in value.split(",") if p.strip()]
        for path in paths:
            if valid and path not in valid:
                raise ApiError(400, "invalidArgument", f"Invalid {name} mask path: \"{path}\". Valid paths are "
                               f"documented at https://developers.google.com/people/api/rest/v1/people.")
        return paths

    def check_path_params(self, method: Method, groups: dict[str, str], path: str) -> None:
        spec = (method.spec.get("parameters") or {}).get("resourceName")
        if spec is None or "pattern" not in spec:
            return
        # the resource name is the path after `v1/` up to the method suffix
        name = path[len("/v1/"):].split(":", 1)[0]
        if name.endswith("/connections"):
            name = name[: -len("/connections")]
        if name.endswith("/members"):
            name = name[: -len("/members")]
        if not re.match(spec["pattern"], name):
            raise ApiError(400, "invalidArgument", f"Invalid resource name: {name}")


_VALIDATOR: PeopleValidator | None = None


def validator() -> PeopleValidator:
    global _VALIDATOR
    if _VALIDATOR is None:
        with _LOCK:
            if _VALIDATOR is None:
                _VALIDATOR = PeopleValidator()
    return _VALIDATOR
