"""Request and response bodies checked against Microsoft Graph v1.0's published API description.

The schemas are `graph_v1_subset.json`, extracted from microsoftgraph/msgraph-metadata (see
`extract_schema.py` and its `source` block for the commit). A request body with a property the
type does not declare, a value of the wrong type, or an enum value the type does not list is
refused the way Graph refuses it: 400 with an OData error (code `RequestBodyRead`, as Graph's
OData reader reports it). Responses the sandbox produces are checked too (`strict`): a sandbox
that drifts from the published description fails the tests instead of teaching the connector
something Graph never says.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
# Annotations Graph accepts and emits on any object (OData JSON format 4.01, section 4.5).
_ANNOTATION = re.compile(r"^(@odata\.[A-Za-z]+|[A-Za-z0-9_]+@odata\.[A-Za-z]+|@[A-Za-z]+\.[A-Za-z.]+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# The CSDL marks `event` open, but Outlook's backend refuses undeclared event properties (its
# error names the type "Microsoft.OutlookServices.Event"): the sandbox does too. `contact` is
# served by the same Outlook backend and is open in the CSDL for the same reason; an Outlook item
# keeps custom data only in extended properties or open extensions (both listed as the
# relationships of the "contact resource type"), so the sandbox refuses undeclared contact
# properties the same way.
CLOSED_IN_PRACTICE = {"microsoft.graph.event", "microsoft.graph.contact"}


class SchemaViolation(ValueError):
    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


@cache
def document() -> dict[str, Any]:
    return json.loads((_HERE / "graph_v1_subset.json").read_text())


def schemas() -> dict[str, Any]:
    return document()["components"]["schemas"]


def _resolve(spec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = spec.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[1]
        return name, schemas()[name]
    return None, spec


def validate(value: Any, type_name: str, *, path: str = "", request: bool = True) -> None:
    """Raise SchemaViolation when `value` is not a `type_name` (e.g. "microsoft.graph.event")."""
    _check(value, {"$ref": f"#/components/schemas/{type_name}"}, path, request)


def _check(value: Any, spec: dict[str, Any], path: str, request: bool) -> None:
    name, schema = _resolve(spec)
    if value is None:
        if name is None and not schema.get("nullable") and "type" in schema:
            raise SchemaViolation("A null value was found for a property that is not nullable.", path)
        return
    kind = schema.get("type")
    if kind == "array":
        if not isinstance(value, list):
            raise SchemaViolation("A collection was expected.", path)
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", request)
        return
    if kind == "object":
        if not isinstance(value, dict):
            raise SchemaViolation(f"An object of type '{name}' was expected.", path)
        props = schema["properties"]
        for key, item in value.items():
            if _ANNOTATION.match(key):
                continue
            if key not in props:
                if schema.get("x-ms-open-type") and name not in CLOSED_IN_PRACTICE:
                    continue  # an open type's dynamic property
                raise SchemaViolation(
                    f"The property '{key}' does not exist on type '{name}'. Make sure to only use property names "
                    "that are defined by the type or mark the type as open type.", path)
            prop = props[key]
            if prop.get("x-ms-navigationProperty") and "$ref" not in prop and "items" not in prop:
                continue  # a navigation property whose target type this subset does not carry
            _check(item, prop, f"{path}.{key}" if path else key, request)
        return
    if "enum" in schema:
        if not isinstance(value, str) or value not in schema["enum"]:
            raise SchemaViolation(f"Requested value '{value}' was not found.", path)
        return
    fmt = schema.get("format")
    if kind == "string":
        if not isinstance(value, str):
            raise SchemaViolation(f"Cannot convert a {type(value).__name__} to the expected type 'Edm.String'.", path)
        if fmt == "date" and not _DATE.match(value):
            raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.Date'.", path)
        if fmt == "date-time" and not _DATETIME.match(value):
            raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.",
                                  path)
        if fmt == "uuid" and not _UUID.match(value):
            raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.Guid'.", path)
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.", path)
        return
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or (fmt == "int32" and not -2**31 <= value < 2**31):
            raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.Int32'.", path)
        return
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SchemaViolation(f"Cannot convert the literal '{value}' to the expected type 'Edm.Double'.", path)
