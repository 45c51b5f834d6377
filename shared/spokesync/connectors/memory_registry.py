"""Process-wide in-memory calendars for spokes of kind "memory" (tests, demos).

A memory spoke's address names its calendar: ``{"calendar": "team"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spokesync.connectors.memory import MemoryCalendar, MemoryConnector

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import SecretStore

CALENDARS: dict[str, MemoryCalendar] = {}


def calendar(name: str) -> MemoryCalendar:
    if name not in CALENDARS:
        CALENDARS[name] = MemoryCalendar(name)
    return CALENDARS[name]


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore, config: Config) -> MemoryConnector:
    name = str(spoke.address.get("calendar") or spoke.id)
    return MemoryConnector(calendar(name), full_listing=bool(spoke.address.get("full_listing")))
