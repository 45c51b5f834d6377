"""Extract the part of Microsoft Graph v1.0's published API description the local Graph server uses.

Source: the public repository microsoftgraph/msgraph-metadata. Its `openapi/v1.0/openapi.yaml` is
generated (conversion-settings/openapi.json, Microsoft.OpenApi.OData) from the CSDL in
`clean_v10_metadata/cleanMetadata.xml` of the same commit; the YAML is too large to be stored in
the mirror we read it from, so this tool reads the CSDL and writes the same shapes the converter
emits for the types and paths we use (`components/schemas/microsoft.graph.<type>`: an object with
its own and inherited properties, `nullable` unless `Nullable="false"`, enums as string enums,
navigation properties marked `x-ms-navigationProperty`).

Run: python -m spokesync.sandbox.graph.extract_schema CSDL COMMIT > graph_v1_subset.json
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from typing import Any

NS = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
ROOTS = ("event", "calendar", "subscription", "changeNotificationCollection", "singleValueLegacyExtendedProperty",
         "multiValueLegacyExtendedProperty", "user", "group", "contact", "contactFolder", "profilePhoto")
# Types whose own properties we do not need (only reached through navigation we do not follow).
SHALLOW = {"user", "group"}
EDM = {
    "Edm.String": {"type": "string"},
    "Edm.Boolean": {"type": "boolean"},
    "Edm.Int32": {"type": "integer", "format": "int32"},
    "Edm.Int64": {"type": "integer", "format": "int64"},
    "Edm.Double": {"type": "number"},
    "Edm.DateTimeOffset": {"type": "string", "format": "date-time"},
    "Edm.Date": {"type": "string", "format": "date"},
    "Edm.TimeOfDay": {"type": "string", "format": "time"},
    "Edm.Guid": {"type": "string", "format": "uuid"},
    "Edm.Binary": {"type": "string", "format": "base64url"},
    "Edm.Duration": {"type": "string", "format": "duration"},
}
# Paths (relative to https://graph.microsoft.com/v1.0), each checked against the CSDL's navigation properties.
PATHS = {
    "/users/{user-id}/calendars": ("user", ["calendars"]),
    "/users/{user-id}/calendar": ("user", ["calendar"]),
    "/users/{user-id}/calendars/{calendar-id}/events": ("user", ["calendars", "events"]),
    "/users/{user-id}/calendars/{calendar-id}/calendarView/delta()": ("user", ["calendars", "calendarView"]),
    "/users/{user-id}/events/{event-id}": ("user", ["events"]),
    "/users/{user-id}/events/{event-id}/instances": ("user", ["events", "instances"]),
    "/groups/{group-id}/calendar": ("group", ["calendar"]),
    "/groups/{group-id}/calendar/events": ("group", ["calendar", "events"]),
    "/groups/{group-id}/calendar/calendarView/delta()": ("group", ["calendar", "calendarView"]),
    "/groups/{group-id}/events/{event-id}": ("group", ["events"]),
    "/groups/{group-id}/events/{event-id}/instances": ("group", ["events", "instances"]),
    "/users/{user-id}/contactFolders": ("user", ["contactFolders"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}": ("user", ["contactFolders"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}/childFolders": ("user", ["contactFolders", "childFolders"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}/contacts": ("user", ["contactFolders", "contacts"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/{contact-id}": ("user", ["contactFolders", "contacts"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/delta()": ("user", ["contactFolders", "contacts"]),
    "/users/{user-id}/contactFolders/{contactFolder-id}/contacts/{contact-id}/photo/$value":
        ("user", ["contactFolders", "contacts", "photo"]),
    "/subscriptions": ("", []),
    "/subscriptions/{subscription-id}": ("", []),
}


def _name(type_ref: str) -> tuple[str, bool]:
    if type_ref.startswith("Collection(") and type_ref.endswith(")"):
        return type_ref[len("Collection("):-1], True
    return type_ref, False


def _short(type_ref: str) -> str:
    return type_ref.split(".", 1)[1] if type_ref.startswith(("graph.", "microsoft.graph.")) else type_ref


def extract(csdl: str, commit: str) -> dict[str, Any]:
    root = ET.parse(csdl).getroot()  # noqa: S314 - Microsoft's published file, read by a maintainer
    schema = root.find(".//edm:Schema[@Namespace='microsoft.graph']", NS)
    assert schema is not None
    types: dict[str, ET.Element] = {}
    for tag in ("EntityType", "ComplexType", "EnumType"):
        for element in schema.findall(f"edm:{tag}", NS):
            types[element.get("Name", "")] = element
    out: dict[str, Any] = {}
    todo = list(ROOTS)

    def ref(type_ref: str) -> dict[str, Any]:
        inner, many = _name(type_ref)
        if inner in EDM:
            item: dict[str, Any] = dict(EDM[inner])
        else:
            short = _short(inner)
            todo.append(short)
            item = {"$ref": f"#/components/schemas/microsoft.graph.{short}"}
        return {"type": "array", "items": item} if many else item

    while todo:
        name = todo.pop()
        key = f"microsoft.graph.{name}"
        if key in out or name not in types:
            continue
        element = types[name]
        if element.tag.endswith("EnumType"):
            out[key] = {"title": name, "type": "string",
                        "enum": [m.get("Name") for m in element.findall("edm:Member", NS)]}
            continue
        chain: list[ET.Element] = []
        current: ET.Element | None = element
        while current is not None:
            chain.append(current)
            base = current.get("BaseType")
            current = types.get(_short(base)) if base else None
        properties: dict[str, Any] = {}
        for level in reversed(chain):
            for prop in level.findall("edm:Property", NS):
                spec = ref(prop.get("Type", ""))
                if prop.get("Nullable") != "false" and "$ref" not in spec:
                    spec["nullable"] = True
                properties[prop.get("Name", "")] = spec
            if name in SHALLOW and level is element:
                continue
            for nav in level.findall("edm:NavigationProperty", NS):
                inner, many = _name(nav.get("Type", ""))
                if name in SHALLOW or _short(inner) not in ROOTS:
                    spec = {"x-ms-navigationProperty": True}
                else:
                    spec = {**ref(nav.get("Type", "")), "x-ms-navigationProperty": True}
                properties[nav.get("Name", "")] = spec
        out[key] = {"title": name, "type": "object", "x-ms-open-type": any(c.get("OpenType") == "true" for c in chain),
                    "x-ms-base-types": [c.get("Name") for c in chain[1:]], "properties": properties}
    navs: dict[str, set[str]] = {}
    for name in ("user", "group", "calendar", "event", "contactFolder", "contact"):
        navs[name] = {n.get("Name", "") for n in types[name].findall("edm:NavigationProperty", NS)}
    for path, (start, steps) in PATHS.items():
        kinds = {"calendars": "calendar", "calendar": "calendar", "events": "event", "calendarView": "event",
                 "instances": "event", "contactFolders": "contactFolder", "childFolders": "contactFolder",
                 "contacts": "contact", "photo": "profilePhoto"}
        current_type = start
        for step in steps:
            assert step in navs[current_type], f"{path}: {current_type} has no navigation property {step}"
            current_type = kinds[step]
    for bound in ("Collection(graph.event)", "Collection(graph.contact)"):
        delta_ok = any(f.get("Name") == "delta" and any(p.get("Type") == bound for p in f.findall("edm:Parameter", NS))
                       for f in schema.findall("edm:Function", NS))
        assert delta_ok, f"no delta function bound to {bound}"
    return {
        "source": {"repository": "https://github.com/microsoftgraph/msgraph-metadata", "commit": commit,
                   "file": "clean_v10_metadata/cleanMetadata.xml",
                   "generated_openapi": "openapi/v1.0/openapi.yaml (same commit, generated from this CSDL)",
                   "tool": "python -m spokesync.sandbox.graph.extract_schema"},
        "paths": sorted(PATHS),
        "components": {"schemas": dict(sorted(out.items()))},
    }


if __name__ == "__main__":  # pragma: no cover - a maintenance tool
    json.dump(extract(sys.argv[1], sys.argv[2]), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
