"""Process-wide in-memory calendars for spokes of kind "memory", and contact folders for
spokes of kind "memory_contacts" (tests, demos, benchmarks).

A memory spoke's address names its calendar: ``{"calendar": "team"}``; a memory contacts
spoke's its folder, and optionally fixed slots like Exchange's:
``{"folder": "crm", "limits": {"emails": 3, "addresses": 3}}``. ``"page_size": n`` makes
either answer its changes in pages of n items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spokesync.connectors.memory import MemoryCalendar, MemoryConnector
from spokesync.model import contact as contact_fields

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

CALENDARS: dict[str, MemoryCalendar] = {}
FOLDERS: dict[str, MemoryCalendar] = {}  # contact folders


def calendar(name: str) -> MemoryCalendar:
    if name not in CALENDARS:
        CALENDARS[name] = MemoryCalendar(name)
    return CALENDARS[name]


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore, config: Config,
               clock: Clock) -> MemoryConnector:
    name = str(spoke.address.get("calendar") or spoke.id)
    page = spoke.address.get("page_size")
    return MemoryConnector(calendar(name), full_listing=bool(spoke.address.get("full_listing")),
                           page_size=int(page) if page else None)


def folder(name: str) -> MemoryCalendar:
    if name not in FOLDERS:
        FOLDERS[name] = MemoryCalendar(name)
    return FOLDERS[name]


def contacts_from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
                        config: Config, clock: Clock) -> MemoryConnector:
    name = str(spoke.address.get("folder") or spoke.id)
    limits = {str(k): int(v) for k, v in dict(spoke.address.get("limits") or {}).items()}
    page = spoke.address.get("page_size")
    return MemoryConnector(folder(name), fields=contact_fields.ALL_FIELDS, limits=limits,
                           full_listing=bool(spoke.address.get("full_listing")),
                           page_size=int(page) if page else None)
