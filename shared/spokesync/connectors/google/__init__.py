"""The Google Calendar spoke kind ("google").

`from_spoke` is the registry's factory. The Google client libraries are
imported only when a connector is built, so importing this package is cheap.
A Google spoke's address is ``{"calendar_id": "<calendar id>"}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.connectors.google.connector import GoogleCalendarConnector
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config, clock: Clock) -> GoogleCalendarConnector:
    from spokesync.connectors.google.auth import credentials_for
    from spokesync.connectors.google.client import GoogleClient
    from spokesync.connectors.google.connector import GoogleCalendarConnector

    calendar_id = str(spoke.address.get("calendar_id") or "")
    if not calendar_id:
        raise ValueError(f"Google spoke {spoke.id!r} has no calendar_id in its address")
    from spokesync.connectors.google.auth import can_set_attendees

    client = GoogleClient(credentials_for(credential, secrets, config), config)
    return GoogleCalendarConnector(client, calendar_id, can_set_attendees=can_set_attendees(credential))
