"""Which connector serves which spoke kind.

Kinds map to "module:function" strings so that a function instance imports
only the SDK of the connectors it actually uses, and only when it uses them.
A factory has the signature
``factory(spoke, credential, secrets, config, clock) -> SpokeConnector``: `clock` is the app's
(``Context.clock``), the only "now" a connector may use (date windows, "has this reminder fired"),
so that a connector follows the app's clock and tests on a FakeClock do not depend on the date.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore, SpokeConnector

Factory = Callable[["Spoke", "CredentialRef | None", "SecretStore", "Config", "Clock"], "SpokeConnector"]

_KINDS: dict[str, str | Factory] = {
    "memory": "spokesync.connectors.memory_registry:from_spoke",
    "google": "spokesync.connectors.google:from_spoke",
    "exchange": "spokesync.connectors.exchange:from_spoke",
    "graph": "spokesync.connectors.graph:from_spoke",
    "memory_contacts": "spokesync.connectors.memory_registry:contacts_from_spoke",
    "google_contacts": "spokesync.connectors.google.contacts:from_spoke",
    "exchange_contacts": "spokesync.connectors.exchange.contacts:from_spoke",
    "graph_contacts": "spokesync.connectors.graph.contacts:from_spoke",
}
# The object type each kind holds: a spoke must hold its hub's (a hub holds one object type).
_OBJECT_TYPES: dict[str, str] = {
    "memory": "calendar", "google": "calendar", "exchange": "calendar", "graph": "calendar",
    "memory_contacts": "contacts", "google_contacts": "contacts", "exchange_contacts": "contacts",
    "graph_contacts": "contacts",
}


def register(kind: str, factory: str | Factory, object_type: str | None = None) -> None:
    _KINDS[kind] = factory
    if object_type is not None:
        _OBJECT_TYPES[kind] = object_type


def object_type_of(kind: str) -> str:
    """"calendar" or "contacts": what a spoke of this kind holds (unknown kinds: "calendar",
    as every kind registered before contacts existed)."""
    return _OBJECT_TYPES.get(kind, "calendar")


def kinds_for(object_type: str) -> list[str]:
    """The spoke kinds that can join a hub of this object type."""
    return sorted(k for k in _KINDS if object_type_of(k) == object_type)


def kinds() -> list[str]:
    return sorted(_KINDS)


def factory_for(kind: str) -> Factory:
    target = _KINDS.get(kind)
    if target is None:
        raise ValueError(f"unknown spoke kind {kind!r}; known kinds: {', '.join(kinds())}")
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module_name), attr)
        _KINDS[kind] = target
    return target  # type: ignore[return-value]


def kept_fields(spoke: Spoke) -> frozenset[str]:
    """The item fields this spoke's options keep out of the sync ("Sync descriptions" off, ...):
    the engine hands them over blank, and a connector's update leaves the spoke's own values
    alone instead of clearing them (docs/decisions/2026-12-01-kept-fields.md). A busy-only
    spoke keeps none: the hub's copies there are placeholders, written whole."""
    if spoke.options.privacy_mode == "busy_only" and object_type_of(spoke.kind) == "calendar":
        return frozenset()
    from spokesync.engine.kinds import kind_for

    kind = kind_for(object_type_of(spoke.kind))
    optional = frozenset().union(*kind.optional_fields.values())
    # the engine's own switches: what it does not exchange with this spoke
    return optional - kind.exchanged_fields(spoke.options, optional)


def connector_for(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore, config: Config,
                  clock: Clock) -> Any:
    connector = factory_for(spoke.kind)(spoke, credential, secrets, config, clock)
    kept = kept_fields(spoke)
    if kept and hasattr(connector, "kept"):
        connector.kept = kept
    return connector
