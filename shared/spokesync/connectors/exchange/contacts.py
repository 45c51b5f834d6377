"""The Exchange contacts spoke (kind `exchange_contacts`): one contacts folder, public or mailbox.

Everything but the item kind is the calendar connector's (`connector.ExchangeConnector`): the same
change detection (public folders: FindItem listing of ids + ChangeKeys diffed against the cursor's
snapshot; mailbox folders: SyncFolderItems with that snapshot as fallback), batched writes with
NEVER_OVERWRITE on the ChangeKey, the hub id in the same PublicStrings extended property, and
retried creates adopting the item that carries their hub id. The mapping: `contact_mapping.py`.

Photos: a contact's picture is a file attachment with IsContactPhoto (as Outlook and OWA store it;
`contacts:Photo` cannot be written). Ours carry the photo's hash in their ContentId, so reading a
contact costs no photo bytes; a picture set in Outlook is fetched (one GetAttachment for a batch)
and hashed. Writes add, replace or remove the attachment only when the hash changed.

Distribution lists (contact groups) live in contacts folders too. They are not contacts: this
spoke never reads them into the hub, never writes or deletes them, and says so once per connector
in the log (`skipped_lists` counts them for the run's notes).

Settings and credentials: those of the `exchange` calendar kind; the spoke's address is
`{"folder_id": ..., "public": true|false}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from exchangelib import Contact as EwsContact
from exchangelib import FileAttachment
from exchangelib import errors as ews_errors
from exchangelib.attachments import AttachmentId
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY
from exchangelib.properties import ItemId, ParentItemId
from exchangelib.services import CreateAttachment as _CreateAttachment
from exchangelib.services import DeleteAttachment as _DeleteAttachment
from exchangelib.services import GetAttachment as _GetAttachment

from spokesync.connectors.exchange import contact_mapping, routing
from spokesync.connectors.exchange.connector import ExchangeConnector
from spokesync.model.contact import Photo
from spokesync.model.item import Item, as_contact
from spokesync.ports import ItemUpdate, NewItem, SpokeItem, WriteResult

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

log = logging.getLogger(__name__)

PHOTO_NAME = "ContactPicture.jpg"  # the name Outlook gives a contact's picture attachment
PHOTO_TAG = "@spokesync"  # ContentId of our photo attachments: "<photo hash>@spokesync"


class GetAttachment(routing.Routed, _GetAttachment):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class CreateAttachment(routing.Routed, _CreateAttachment):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class DeleteAttachment(routing.Routed, _DeleteAttachment):  # type: ignore[misc]
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


def _photo_attachments(item: Any) -> list[Any]:
    return [a for a in (getattr(item, "attachments", None) or ()) if isinstance(a, FileAttachment)
            and a.is_contact_photo]


def _tagged_hash(attachment: Any) -> str | None:
    content_id = attachment.content_id or ""
    return content_id[: -len(PHOTO_TAG)] if content_id.endswith(PHOTO_TAG) else None


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
        # item id -> (ChangeKey, picture attachments) as last read: an update of that version needs no
        # extra GetItem to know which picture the item has
        self._seen_photos: dict[str, tuple[str, list[Any]]] = {}
        self._told = False

    @staticmethod
    def _register() -> None:
        contact_mapping.register()

    _KEPT_FIELDNAMES = contact_mapping.KEPT_FIELDNAMES

    def _write_fieldnames(self) -> list[str]:
        return [*contact_mapping.WRITE_FIELDS, "spokesync_hub_id"]

    def _has_exceptions(self, event: Any) -> bool:
        return False

    def _new_item(self, event: Item, hub_id: str | None, **ids: Any) -> Any:
        item = EwsContact(account=self.account, folder=self.folder, **ids,
                          **contact_mapping.item_values(as_contact(event)))
        if hub_id is not None:
            item.spokesync_hub_id = hub_id
        return item

    def _to_spoke_items(self, got: list[tuple[str, Any]], svc: Any) -> dict[str, SpokeItem]:
        items: dict[str, SpokeItem] = {}
        untagged: dict[str, Any] = {}  # item id -> a picture set in Outlook (its bytes are read once)
        for item_id, found in got:
            if not isinstance(found, EwsContact):  # a distribution list (or another kind of item)
                self._skip(item_id, found)
                continue
            contact = contact_mapping.item_to_contact(found)
            photos = _photo_attachments(found)
            self._seen_photos[found.id] = (found.changekey, photos)
            if photos:
                known = _tagged_hash(photos[0])
                if known:
                    contact = replace(contact, photo=Photo(known, photos[0].content_type or "image/jpeg"))
                else:
                    untagged[item_id] = photos[0]
            items[item_id] = SpokeItem(found.id, found.changekey, contact, found.spokesync_hub_id or None)
        if untagged:
            fetched = GetAttachment(account=self.account, chunk_size=self.batch_size).call(
                items=[a.attachment_id for a in untagged.values()], include_mime_content=False, body_type=None,
                filter_html_content=None, additional_fields=None)
            for (item_id, attachment), full in zip(untagged.items(), fetched, strict=True):
                if isinstance(full, Exception) or full.content is None:
                    continue  # gone meanwhile: the next change of the item reads it again
                photo = Photo.of(full.content, attachment.content_type or "image/jpeg")
                spoke_item = items[item_id]
                items[item_id] = replace(spoke_item, event=replace(as_contact(spoke_item.event), photo=photo))
        return items

    # -------------------------------------------------------------- photos
    def create(self, items: Sequence[NewItem]) -> list[WriteResult]:
        results = super().create(items)
        wanted = [(pos, r.spoke_item_id, as_contact(items[pos].event).photo) for pos, r in enumerate(results)
                  if r.status == "ok" and as_contact(items[pos].event).photo is not None]
        if wanted:
            with self._scope():
                self._write_photos(wanted, {}, results)
        return results

    def update(self, items: Sequence[ItemUpdate]) -> list[WriteResult]:
        results = super().update(items)
        done = [(pos, r.spoke_item_id) for pos, r in enumerate(results) if r.status == "ok"]
        if done and "photo" not in self.kept:  # photos switched off: Exchange keeps its picture
            with self._scope():
                current: dict[str, list[Any]] = {}
                for pos, item_id in done:
                    seen = self._seen_photos.get(item_id)
                    if seen is not None and seen[0] == items[pos].version:
                        current[item_id] = seen[1]
                unknown = [item_id for _, item_id in done if item_id not in current]
                if unknown:
                    current.update(self._current_photos(unknown))
                self._write_photos([(pos, item_id, as_contact(items[pos].event).photo) for pos, item_id in done],
                                   current, results)
        return results

    def _current_photos(self, ids: list[str]) -> dict[str, list[Any]]:
        """item id -> its picture attachments (one GetItem IdOnly + attachments for the batch)."""
        path = {FieldPath(field=EwsContact.get_field_by_fieldname("attachments"))}
        svc = self._get_item(max(self.batch_size, 100))
        out: dict[str, list[Any]] = {}
        for item_id, found in zip(ids, svc.call(items=[ItemId(i) for i in ids], additional_fields=path,
                                                shape=ID_ONLY), strict=True):
            if not isinstance(found, Exception):
                out[item_id] = _photo_attachments(found)
        return out

    def _write_photos(self, wanted: list[tuple[int, str, Photo | None]], current: dict[str, list[Any]],
                      results: list[WriteResult]) -> None:
        """Make each item's picture the wanted one (None: no picture), touching only those that differ;
        the results then carry the items' final ChangeKeys."""
        remove: list[tuple[str, Any]] = []  # (item id, attachment)
        add: list[tuple[str, Photo]] = []
        for _, item_id, photo in wanted:
            have = current.get(item_id, [])
            if photo is None:
                remove.extend((item_id, a) for a in have)
            elif not (len(have) == 1 and _tagged_hash(have[0]) == photo.hash):
                if not photo.data:
                    log.warning("contact photo %s has no bytes in the hub; Exchange keeps its picture", photo.hash)
                    continue
                remove.extend((item_id, a) for a in have)
                add.append((item_id, photo))
        if remove:
            for outcome in DeleteAttachment(account=self.account, chunk_size=self.batch_size).call(
                    items=[AttachmentId(id=a.attachment_id.id) for _, a in remove]):
                if isinstance(outcome, Exception) and not isinstance(outcome, ews_errors.ErrorInvalidAttachmentId):
                    raise outcome
        touched = {item_id for item_id, _ in remove}
        for item_id, photo in add:  # CreateAttachment takes one parent item per call
            picture = FileAttachment(name=PHOTO_NAME, content=photo.data, content_type=photo.content_type,
                                     content_id=photo.hash + PHOTO_TAG, is_contact_photo=True)
            (outcome,) = list(CreateAttachment(account=self.account).call(parent_item=ParentItemId(item_id),
                                                                           items=[picture]))
            if isinstance(outcome, Exception):
                raise outcome
            touched.add(item_id)
        if touched:
            changekeys = self._current_changekeys(sorted(touched))
            for pos, item_id, _ in wanted:
                if item_id in changekeys and results[pos].status == "ok":
                    results[pos] = replace(results[pos], version=changekeys[item_id])

    def _skip(self, item_id: str, found: Any) -> None:
        self.skipped_lists.add(item_id)
        if not self._told:
            self._told = True
            log.info("Exchange contacts folder %s holds distribution lists (e.g. %r): they are left alone, "
                     "neither synced nor changed", self.folder_id, getattr(found, "display_name", "") or "")


def connector_for_folder(settings: Any, password: str, config: Config, folder_id: str, *, public: bool,
                         batch_size: int = 100, clock: Clock | None = None) -> ExchangeContactsConnector:
    from spokesync.connectors.exchange import connector_for_folder as shared

    return cast(ExchangeContactsConnector, shared(settings, password, config, folder_id, public=public,
                                                  batch_size=batch_size, cls=ExchangeContactsConnector,
                                                  clock=clock))


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore,
               config: Config, clock: Clock) -> ExchangeContactsConnector:
    """The registry's factory for `exchange_contacts`: the `exchange` credential, a contacts folder."""
    from spokesync.connectors.exchange import from_spoke as shared

    return cast(ExchangeContactsConnector, shared(spoke, credential, secrets, config, clock,
                                                  cls=ExchangeContactsConnector))
