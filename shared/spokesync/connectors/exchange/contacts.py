"""The Exchange contacts spoke (kind `exchange_contacts`): one contacts folder, public or mailbox.

Everything but the item kind is the calendar connector's (`connector.ExchangeConnector`): the same
change detection (public folders: FindItem listing of ids + ChangeKeys diffed against the cursor's
snapshot; mailbox folders: SyncFolderItems with that snapshot as fallback), batched writes with
NEVER_OVERWRITE on the ChangeKey, the hub id in the same PublicStrings extended property, and
retried creates adopting the item that carries their hub id. The mapping: `contact_mapping.py`.

Distribution lists (contact groups) live in contacts folders too. They are not contacts: this
spoke never reads them into the hub, never writes or deletes them, and says so once per connector
in the log (`skipped_lists` counts them for the run's notes).

Settings and credentials: those of the `exchange` calendar kind; the spoke's address is
`{"folder_id": ..., "public": true|false}`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from exchangelib import Contact as EwsContact

from spokesync.connectors.exchange import contact_mapping
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.contact import Contact
from spokesync.model.event import Event
from spokesync.ports import SpokeItem

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import SecretStore

log = logging.getLogger(__name__)


class ExchangeContactsConnector(ExchangeConnector):
    ITEM_CLASS = EwsContact
    FOLDER_CLASS = "IPF.Contact"
    FOLDER_WORD = "contacts folder"
    WRONG_FOLDER_CODE = "not_a_contacts_folder"
    READ_FIELDS = contact_mapping.READ_FIELDS
    FIELDS = contact_mapping.FIELDS
    LIMITS = contact_mapping.LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped_lists: set[str] = set()  # ids of distribution lists seen (and left alone)
        self._told = False

    @staticmethod
    def _register() -> None:
        contact_mapping.register()

    def _write_fieldnames(self) -> list[str]:
        return [*contact_mapping.WRITE_FIELDS, "spokesync_hub_id"]

    def _has_exceptions(self, event: Any) -> bool:
        return False

    def _new_item(self, event: Event, hub_id: str | None, **ids: Any) -> Any:
        item = EwsContact(account=self.account, folder=self.folder, **ids,
                          **contact_mapping.item_values(cast(Contact, event)))
        if hub_id is not None:
            item.spokesync_hub_id = hub_id
        return item

    def _to_spoke_items(self, got: list[tuple[str, Any]], svc: Any) -> dict[str, SpokeItem]:
        items: dict[str, SpokeItem] = {}
        for item_id, found in got:
            if not isinstance(found, EwsContact):  # a distribution list (or another kind of item)
                self._skip(item_id, found)
                continue
            contact = contact_mapping.item_to_contact(found)
            items[item_id] = SpokeItem(found.id, found.changekey, cast(Event, contact), found.spokesync_hub_id or None)
        return items

    def _skip(self, item_id: str, found: Any) -> None:
        self.skipped_lists.add(item_id)
        if not self._told:
            self._told = True
            log.info("Exchange contacts folder %s holds distribution lists (e.g. %r): they are left alone, "
                     "neither synced nor changed", self.folder_id, getattr(found, "display_name", "") or "")


def connector_for_folder(settings: Any, password: str, config: Config, folder_id: str, *, public: bool,
                         batch_size: int = 100) -> ExchangeContactsConnector:
    from spokesync.connectors.exchange import connector_for_folder as shared

    return cast(ExchangeContactsConnector, shared(settings, password, config, folder_id, public=public,
                                                  batch_size=batch_size, cls=ExchangeContactsConnector))


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config) -> ExchangeContactsConnector:
    """The registry's factory for `exchange_contacts`: the `exchange` credential, a contacts folder."""
    from spokesync.connectors.exchange import from_spoke as shared

    return cast(ExchangeContactsConnector, shared(spoke, credential, secrets, config, cls=ExchangeContactsConnector))
