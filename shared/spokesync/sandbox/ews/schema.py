"""Microsoft's EWS schema (messages.xsd + types.xsd, Exchange2016 level) as an lxml validator.

Real Exchange validates every request against the schema it publishes next to
`Exchange.asmx` and answers `ErrorSchemaValidation` (a SOAP fault with the line,
the position and the violation) before looking at the content. The sandbox does
the same, and the tests validate the sandbox's own answers with it. Where the
files come from and the one local change: `schema/README.md`.

The element order of item types (`ItemType`, then `CalendarItemType`'s own
elements) is read from the schema too, so that the server renders items in the
order the schema requires rather than the order a client happened to send.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).with_name("schema")
XS = "http://www.w3.org/2001/XMLSchema"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"


@functools.cache
def validator() -> etree.XMLSchema:
    """messages.xsd (which imports types.xsd), with the XML namespace's attributes declared first."""
    driver = (f'<xs:schema xmlns:xs="{XS}">'
              f'<xs:import namespace="http://www.w3.org/XML/1998/namespace" '
              f'schemaLocation="{(SCHEMA_DIR / "xml.xsd").as_uri()}"/>'
              f'<xs:import namespace="{M}" schemaLocation="{(SCHEMA_DIR / "messages.xsd").as_uri()}"/>'
              "</xs:schema>")
    return etree.XMLSchema(etree.fromstring(driver))


@dataclass(frozen=True)
class Violation:
    line: int
    position: int
    text: str

    def __str__(self) -> str:
        return f"{self.text} Line {self.line}, position {self.position}."


def _short(message: str) -> str:
    # libxml2 lists every allowed value of an enumeration (hundreds for UnindexedFieldURIType)
    return re.sub(r"is not an element of the set \{[^}]{200,}\}", "is not an element of the set of allowed values",
                  message)


def _position(raw: bytes | None, elem: etree._Element | None, line: int) -> int:
    """1-based column of `elem`'s start tag on `line` of the raw request (libxml2 reports no column)."""
    if raw is None or elem is None or line < 1:
        return 1
    lines = raw.split(b"\n")
    if line > len(lines):
        return 1
    text = lines[line - 1]
    name = etree.QName(elem).localname
    # the how-many-th element of that name starting on that line
    nth = sum(1 for e in elem.getroottree().getroot().iter() if e is not elem and isinstance(e.tag, str)
              and e.sourceline == line and etree.QName(e).localname == name and _before(e, elem))
    matches = list(re.finditer(rb"<(?:[\w.-]+:)?" + re.escape(name.encode()) + rb"[\s/>]", text))
    # the position Exchange reports is that of the name after '<'
    return matches[nth].start() + 2 if nth < len(matches) else 1


def _before(a: etree._Element, b: etree._Element) -> bool:
    for e in b.getroottree().getroot().iter():
        if e is a:
            return True
        if e is b:
            return False
    return False


def check(elements: list[etree._Element], raw: bytes | None = None) -> Violation | None:
    """The first schema violation in `elements` (each validated as its own root), or None."""
    schema = validator()
    for elem in elements:
        if schema.validate(elem):
            continue
        error = schema.error_log.last_error
        node = None
        if error.path:
            namespaces = {k: v for e in elem.iter() if isinstance(e.tag, str) for k, v in e.nsmap.items() if k}
            parent = elem.getparent()
            try:
                found = (parent if parent is not None else elem).xpath("." + error.path, namespaces=namespaces)
                node = found[0] if found and isinstance(found[0], etree._Element) else None
            except etree.XPathError:
                node = None
        line = error.line or (node.sourceline if node is not None else 0) or 0
        return Violation(line, _position(raw, node, line), _short(error.message))
    return None


def violations(elem: etree._Element) -> list[str]:
    """Every violation in one element (tests: the server's own responses)."""
    schema = validator()
    if schema.validate(elem):
        return []
    return [f"line {e.line}: {_short(e.message)}" for e in schema.error_log]


@functools.cache
def _types_doc() -> etree._ElementTree:
    return etree.parse(str(SCHEMA_DIR / "types.xsd"))


@functools.cache
def element_order(type_name: str) -> tuple[str, ...]:
    """Local names of the elements of a complex type in schema order, base types first
    (`CalendarItemType`: ItemType's MimeContent, ItemId, ... then Start, End, ...)."""
    doc = _types_doc()
    found = doc.find(f"{{{XS}}}complexType[@name='{type_name}']")
    if found is None:
        raise KeyError(type_name)
    names: list[str] = []
    extension = found.find(f"{{{XS}}}complexContent/{{{XS}}}extension")
    body = found
    if extension is not None:
        base = (extension.get("base") or "").split(":")[-1]
        names.extend(element_order(base))
        body = extension
    for elem in body.iter(f"{{{XS}}}element"):
        name = elem.get("name") or (elem.get("ref") or "").split(":")[-1]
        if name and name not in names:
            names.append(name)
    return tuple(names)
