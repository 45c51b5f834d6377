"""Read infra/terraform offline: python-hcl2 parses every file; small helpers
make the parsed blocks easy to query, and `optional_defaults` evaluates the
`optional(type, default)` defaults of a typed variable, so tests can compare
Terraform's defaults with the code's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "infra" / "terraform"
MODULE_DIR = TF_DIR / "modules" / "http_function"

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def parse_file(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS)  # type: ignore[no-any-return]


@dataclass
class Config:
    """The blocks of one Terraform module directory, merged across its files."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        try:
            return self.resources[rtype][name]
        except KeyError:
            raise AssertionError(f"infra/terraform has no resource {rtype}.{name}") from None


def load(directory: Path = TF_DIR) -> Config:
    cfg = Config()
    for path in sorted(directory.glob("*.tf")):
        cfg.text += path.read_text(encoding="utf-8") + "\n"
        parsed = parse_file(path)
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    assert name not in cfg.resources.get(rtype, {}), f"duplicate resource {rtype}.{name}"
                    cfg.resources.setdefault(rtype, {})[name] = body
        for block in parsed.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    cfg.data.setdefault(dtype, {})[name] = body
        for kind, target in (("module", cfg.modules), ("variable", cfg.variables), ("output", cfg.outputs)):
            for block in parsed.get(kind, []):
                for name, body in block.items():
                    assert name not in target, f"duplicate {kind} {name}"
                    target[name] = body
        for block in parsed.get("locals", []):
            for name, value in block.items():
                assert name not in cfg.locals, f"duplicate local {name}"
                cfg.locals[name] = value
        cfg.terraform.extend(parsed.get("terraform", []))
    return cfg


def expr(value: Any) -> str:
    """An HCL expression as written, without the ${...} wrapper python-hcl2 adds."""
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    value = body.get(name)
    if isinstance(value, list):
        assert len(value) == 1, f"expected one {name} block"
        value = value[0]
    assert isinstance(value, dict), f"no {name} block"
    return value


# --- optional() defaults of a variable's type expression


class _TypeParser:
    """Parses a type constraint just enough to evaluate optional() defaults."""

    _TOKEN = re.compile(
        r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_-]*)|(?P<sym>[(){}\[\],=:]))'
    )

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = self._TOKEN.match(text, pos)
            if not m:
                raise ValueError(f"cannot tokenize type at {text[pos : pos + 30]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("", "")

    def take(self, value: str | None = None) -> str:
        kind, tok = self.peek()
        if value is not None and tok != value:
            raise ValueError(f"expected {value!r}, got {tok!r}")
        self.i += 1
        return tok

    def type_(self) -> Any:
        """Returns the default a value of this type takes when absent: dict for objects, else None."""
        word = self.take()
        if word == "object":
            self.take("(")
            self.take("{")
            defaults: dict[str, Any] = {}
            while self.peek()[1] != "}":
                name = self.take()
                self.take("=")
                defaults[name] = self.attr()
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            self.take(")")
            return defaults
        if word in ("list", "set", "map", "tuple"):
            self.take("(")
            self.type_()
            self.take(")")
            return None
        return None  # string, number, bool, any

    def attr(self) -> Any:
        if self.peek()[1] != "optional":
            return self.type_()
        self.take("optional")
        self.take("(")
        inner = self.type_()
        default: Any = None
        if self.peek()[1] == ",":
            self.take(",")
            default = self.value()
            if isinstance(inner, dict) and isinstance(default, dict):
                default = {**inner, **default} if default else dict(inner)
        self.take(")")
        return default

    def value(self) -> Any:
        kind, tok = self.peek()
        if kind == "str":
            self.take()
            return tok[1:-1].encode().decode("unicode_escape")
        if kind == "num":
            self.take()
            return float(tok) if "." in tok else int(tok)
        if tok in ("true", "false", "null"):
            self.take()
            return {"true": True, "false": False, "null": None}[tok]
        if tok == "[":
            self.take("[")
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("]")
            return items
        if tok == "{":
            self.take("{")
            obj = {}
            while self.peek()[1] != "}":
                key = self.take()
                self.take()  # = or :
                obj[key] = self.value()
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
            return obj
        raise ValueError(f"unsupported default value {tok!r}")


def optional_defaults(variable: dict[str, Any]) -> dict[str, Any]:
    """The effective value of an object-typed variable whose default is {} (every optional() default applied)."""
    parser = _TypeParser(expr(variable["type"]))
    defaults = parser.type_()
    assert isinstance(defaults, dict), "not an object type"
    return _fill(defaults)


def _fill(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    return value
