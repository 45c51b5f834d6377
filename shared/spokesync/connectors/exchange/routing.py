"""Routing public-folder requests when a deployment has several public-folder mailboxes.

Microsoft's "Route public folder hierarchy requests" and "Route public folder content requests":
1. Autodiscover GetUserSettings for the user's mailbox gives PublicFolderInformation (the hierarchy
   mailbox: X-AnchorMailbox of hierarchy requests) and InternalRpcClientServer (X-PublicFolderMailbox);
2. the folder's PR_REPLICA_LIST (0x6698, binary, the content mailbox's GUID as ASCII), read with a
   hierarchy request;
3. Autodiscover for `<GUID>@<domain>`: its AutoDiscoverSMTPAddress goes into both headers of every
   content request (FindItem, GetItem, CreateItem, UpdateItem, DeleteItem on the folder's items).

exchangelib sends `X-AnchorMailbox: <account address>` on every request of an account
(`EWSAccountService._extra_headers`); the services here add the routing headers on top, from a context
variable the connector sets around its calls. Off unless the credential says `public_folder_mailboxes`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from spokesync.ports import ConnectorError

ANS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
REPLICA_LIST_TAG = 0x6698
_HEADERS: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("spokesync_ews_routing",
                                                                                 default=None)


class Routed:
    """Mixin for exchangelib services: the routing headers of the current scope, if any."""

    def _extra_headers(self) -> dict[str, str]:
        headers: dict[str, str] = dict(super()._extra_headers())  # type: ignore[misc]
        headers.update(_HEADERS.get() or {})
        return headers


@contextmanager
def headers(values: dict[str, str] | None) -> Iterator[None]:
    token = _HEADERS.set(values)
    try:
        yield
    finally:
        _HEADERS.reset(token)


def autodiscover_url(ews_url: str) -> str:
    parts = urlsplit(ews_url)
    return f"{parts.scheme}://{parts.netloc}/autodiscover/autodiscover.svc"


def user_settings(account: Any, url: str, user: str, names: tuple[str, ...]) -> dict[str, str]:
    """One SOAP Autodiscover GetUserSettings through the account's own authenticated session."""
    body = (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="{ANS}" '
            'xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            "<soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion>"
            "<wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings"
            f"</wsa:Action><wsa:To>{escape(url)}</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage>"
            f"<a:Request><a:Users><a:User><a:Mailbox>{escape(user)}</a:Mailbox></a:User></a:Users>"
            f"<a:RequestedSettings>{''.join(f'<a:Setting>{n}</a:Setting>' for n in names)}</a:RequestedSettings>"
            "</a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>").encode()
    session = account.protocol.get_session()
    try:
        answer = session.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"},
                              allow_redirects=False, timeout=30)
    finally:
        account.protocol.release_session(session)
    if answer.status_code != 200:
        raise ConnectorError(f"public folder routing: Autodiscover at {urlsplit(url).hostname} answered HTTP "
                             f"{answer.status_code}; it is needed to find the public-folder mailboxes")
    root = etree.fromstring(answer.content, etree.XMLParser(resolve_entities=False, no_network=True))
    response = root.find(f".//{{{ANS}}}UserResponse")
    if response is None or (response.findtext(f"{{{ANS}}}ErrorCode") or "") != "NoError":
        raise ConnectorError(f"public folder routing: Autodiscover does not know {user}")
    return {s.findtext(f"{{{ANS}}}Name") or "": s.findtext(f"{{{ANS}}}Value") or ""
            for s in response.iter(f"{{{ANS}}}UserSetting")}


def hierarchy_headers(account: Any, ews_url: str) -> dict[str, str]:
    """X-AnchorMailbox / X-PublicFolderMailbox of hierarchy requests (GetFolder, FindFolder)."""
    info = user_settings(account, autodiscover_url(ews_url), account.primary_smtp_address,
                         ("PublicFolderInformation", "InternalRpcClientServer"))
    hierarchy = {"X-AnchorMailbox": info.get("PublicFolderInformation", ""),
                 "X-PublicFolderMailbox": info.get("InternalRpcClientServer", "")}
    if not all(hierarchy.values()):
        raise ConnectorError("public folder routing: Autodiscover gave no PublicFolderInformation for "
                             f"{account.primary_smtp_address}; switch the several-public-folder-mailboxes mode off")
    return hierarchy


def discover(account: Any, ews_url: str, folder_id: str) -> dict[str, str]:
    """The headers of content requests for one public folder (three requests, once per connector)."""
    from exchangelib.extended_properties import ExtendedProperty
    from exchangelib.fields import FieldPath
    from exchangelib.folders import Folder, PublicFoldersRoot
    from exchangelib.services import GetFolder

    class ReplicaList(ExtendedProperty):  # type: ignore[misc]
        property_tag = REPLICA_LIST_TAG
        property_type = "Binary"

    class RoutedGetFolder(Routed, GetFolder):  # type: ignore[misc]
        pass

    url = autodiscover_url(ews_url)
    hierarchy = hierarchy_headers(account, ews_url)
    if "replica_list" not in {f.name for f in Folder.FIELDS}:
        Folder.register("replica_list", ReplicaList)
    folder = Folder(root=PublicFoldersRoot(account=account, id=folder_id), id=folder_id)
    with headers(hierarchy):
        (found,) = list(RoutedGetFolder(account=account).call(
            folders=[folder], additional_fields=[FieldPath(field=Folder.get_field_by_fieldname("replica_list"))],
            shape="IdOnly"))
    if isinstance(found, Exception):
        raise found
    replica = found.replica_list
    guid = (replica if isinstance(replica, bytes) else str(replica or "").encode())[:36].decode("ascii", "replace")
    if not guid:
        return hierarchy
    domain = account.primary_smtp_address.split("@")[-1]
    content = user_settings(account, url, f"{guid}@{domain}", ("AutoDiscoverSMTPAddress",))
    address = content.get("AutoDiscoverSMTPAddress", "")
    return {"X-AnchorMailbox": address, "X-PublicFolderMailbox": address}
