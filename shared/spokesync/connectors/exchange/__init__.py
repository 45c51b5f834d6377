"""The Exchange Server spoke (EWS through exchangelib): public folders and mailbox folders.

What setup calls:
- `validate(settings, password, config)` before saving a credential: says
  precisely what is wrong, or returns what it found (server version, whether
  public folders are reachable);
- `browse(settings, password, config, parent=None, public=True)`: one level
  of the folder tree (public folders allow no deep traversal), calendar and
  contact folders plus the folders that lead to them;
- `from_spoke(spoke, credential, secrets, config, clock)`: the registry's factory.

A spoke's address: `{"folder_id": ..., "public": true|false}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spokesync.connectors.exchange.access import ExchangeSettings, UrlRefused, check_url, describe, make_account
from spokesync.ports import ConnectorError, CredentialBroken

if TYPE_CHECKING:
    from spokesync.config import Config
    from spokesync.connectors.exchange.connector import ExchangeConnector
    from spokesync.model.hub import CredentialRef, Spoke
    from spokesync.ports import Clock, SecretStore

__all__ = ["ExchangeSettings", "FolderInfo", "UrlRefused", "ValidationResult", "browse", "check_url",
           "connector_for_folder", "from_spoke", "save_credential", "validate"]


def connector_for_folder(settings: ExchangeSettings, password: str, config: Config, folder_id: str, *,
                         public: bool, batch_size: int | None = None, cls: type[ExchangeConnector] | None = None,
                         clock: Clock | None = None) -> ExchangeConnector:
    """A calendar connector, or with `cls` another item kind's (contacts.ExchangeContactsConnector).
    `clock`: the app's (the registry's factories always pass it); None is the system clock."""
    from spokesync.connectors.exchange.connector import WRITE_BATCH, ExchangeConnector

    account = make_account(settings, password, config)
    return (cls or ExchangeConnector)(account, folder_id, public=public, settings=settings,
                                      batch_size=batch_size or WRITE_BATCH,
                                      now=clock.now if clock is not None else None)


def from_spoke(spoke: Spoke, credential: CredentialRef | None, secrets: SecretStore, config: Config,
               clock: Clock, cls: type[ExchangeConnector] | None = None) -> ExchangeConnector:
    if credential is None or credential.kind != "exchange":
        raise ConnectorError(f"spoke {spoke.name!r} has no Exchange credential")
    if credential.broken_reason:
        raise CredentialBroken(credential.broken_reason)
    settings = ExchangeSettings.from_dict(credential.settings)
    if not credential.secret_name:
        raise CredentialBroken("the Exchange credential has no saved password")
    try:
        password = secrets.get(credential.secret_name)
    except KeyError as exc:
        raise CredentialBroken("the Exchange password is missing from the secret store") from exc
    folder_id = spoke.address.get("folder_id")
    if not folder_id:
        raise ConnectorError(f"spoke {spoke.name!r} has no Exchange folder")
    return connector_for_folder(settings, password, config, str(folder_id), public=bool(spoke.address.get("public")),
                                batch_size=int(spoke.address["batch_size"]) if spoke.address.get("batch_size") else None,
                                cls=cls, clock=clock)


@dataclass(frozen=True)
class ValidationResult:
    server_version: str  # e.g. "15.1.2507.6"
    public_folders: bool
    public_folders_reason: str = ""
    mailbox: str = ""  # the mailbox's primary SMTP address as the server's directory resolved it


def validate(settings: ExchangeSettings | dict[str, Any], password: str, config: Config,
             require_public_folders: bool = False) -> ValidationResult:
    """Talk to the server once or twice and say precisely what is wrong, if anything."""
    from exchangelib import Build

    from spokesync.connectors.exchange.access import VERSION_LABELS, VERSIONS

    if isinstance(settings, dict):
        settings = ExchangeSettings.from_dict(settings)
    account = make_account(settings, password, config, budget_s=10.0)
    primary = _resolve_mailbox(account, settings)
    if primary != settings.smtp_address:
        from dataclasses import replace

        settings = replace(settings, mailbox=primary)
        account = make_account(settings, password, config, budget_s=10.0)
    try:
        calendar = account.calendar  # GetFolder(calendar): authentication, version, EWS itself
        del calendar
    except Exception as exc:
        raise describe(exc, settings) from exc
    build = account.version.build
    major, minor = VERSIONS[settings.version]
    if build is not None and build < Build(major, minor):
        raise ConnectorError(f"wrong version: the server runs Exchange {build.major_version}.{build.minor_version} "
                             f"({build}), older than the chosen {VERSION_LABELS[settings.version]}")
    public_ok, reason = True, ""
    try:
        if settings.public_folder_mailboxes:
            _routed_public_root(account, settings)
        else:
            root = account.public_folders_root
            del root
    except Exception as exc:
        public_ok, reason = False, f"no access to public folders: {describe(exc, settings)}"
        if require_public_folders:
            raise ConnectorError(reason) from exc
    return ValidationResult(server_version=str(build), public_folders=public_ok, public_folders_reason=reason,
                            mailbox=settings.smtp_address)


def _resolve_mailbox(account: Any, settings: ExchangeSettings) -> str:
    """The primary SMTP address of the mailbox entered (ResolveNames; Microsoft's reference: without a
    routing type an address is matched against primary addresses only, with "smtp:" against every proxy
    address too). An address the directory does not know is returned as entered: the GetFolder that
    follows then answers ErrorNonExistentMailbox, said in words ("no such mailbox")."""
    from exchangelib import errors as e
    from exchangelib.properties import Mailbox

    entered = settings.smtp_address
    for query in (entered, f"smtp:{entered}"):
        try:
            found = account.protocol.resolve_names([query])
        except (e.ErrorAccessDenied, e.ErrorInvalidOperation, e.ErrorNameResolutionNoResults):
            return entered  # a directory we may not search: the GetFolder check stays
        except Exception as exc:
            raise describe(exc, settings) from exc
        boxes = [b for b in found if isinstance(b, Mailbox) and b.email_address]
        exact = [b for b in boxes if b.email_address.lower() == entered.lower()]
        if exact:
            return str(exact[0].email_address)
        if len(boxes) == 1:
            return str(boxes[0].email_address)
        if len(boxes) > 1:
            names = ", ".join(sorted(str(b.email_address) for b in boxes)[:5])
            raise ConnectorError(f"the address {entered} matches several mailboxes ({names}): enter the primary "
                                 "SMTP address of the one to sync", code="ambiguous_mailbox")
    return entered


def _routed_public_root(account: Any, settings: ExchangeSettings) -> None:
    """GetFolder(publicfoldersroot) as a hierarchy request routed to the hierarchy mailbox."""
    from exchangelib.folders import PublicFoldersRoot
    from exchangelib.properties import DistinguishedFolderId
    from exchangelib.services import GetFolder

    from spokesync.connectors.exchange import routing

    class RoutedGetFolder(routing.Routed, GetFolder):  # type: ignore[misc]
        pass

    with routing.headers(routing.hierarchy_headers(account, settings.ews_url)):
        root = PublicFoldersRoot(account=account, _id=DistinguishedFolderId(id="publicfoldersroot"))
        for found in RoutedGetFolder(account=account).call(folders=[root], additional_fields=[], shape="IdOnly"):
            if isinstance(found, Exception):
                raise found


def save_credential(ctx: Any, label: str, settings: dict[str, Any], password: str, *,
                    require_public_folders: bool = False) -> CredentialRef:
    """Validate, then store the password (OAuth: the client secret) in the SecretStore and the reference
    in the hub store. Nothing is saved when validation fails (the ConnectorError says why)."""
    import uuid

    from spokesync.model.hub import CredentialRef

    parsed = ExchangeSettings.from_dict(settings)
    result = validate(parsed, password, ctx.config, require_public_folders=require_public_folders)
    credential_id = "cred-" + uuid.uuid4().hex[:12]
    secret_name = ctx.secrets.put(f"exchange-{credential_id}", password)
    # The hub store keeps the settings only; the password (or OAuth client secret) is in the SecretStore.
    if result.mailbox and result.mailbox != parsed.smtp_address:  # the directory's primary address
        from dataclasses import replace

        parsed = replace(parsed, mailbox=result.mailbox)
    stored = {**parsed.to_dict(), "server_version": result.server_version, "public_folders": result.public_folders}
    credential = CredentialRef(id=credential_id, kind="exchange", label=label or parsed.username or parsed.smtp_address,
                               secret_name=secret_name, settings=stored)
    ctx.store.put_credential(credential)
    return credential


@dataclass(frozen=True)
class FolderInfo:
    id: str
    name: str
    folder_class: str  # IPF.Appointment, IPF.Contact, IPF.Note, ...
    child_count: int
    public: bool

    @property
    def kind(self) -> str:
        if self.folder_class.startswith("IPF.Appointment"):
            return "calendar"
        if self.folder_class.startswith("IPF.Contact"):
            return "contacts"
        return "folder"


def browse(settings: ExchangeSettings | dict[str, Any], password: str, config: Config, parent: str | None = None,
           public: bool = True, kinds: tuple[str, ...] = ("calendar", "contacts")) -> list[FolderInfo]:
    """Children of `parent` (None: the public-folder root, or the mailbox's top of information store):
    the calendar/contact folders and any folder with children (it may lead to some). One FindFolder call."""
    from exchangelib.folders import Folder, PublicFoldersRoot, Root
    from exchangelib.properties import DistinguishedFolderId, FolderId
    from exchangelib.services import FindFolder

    if isinstance(settings, dict):
        settings = ExchangeSettings.from_dict(settings)
    account = make_account(settings, password, config, budget_s=10.0)
    root_cls = PublicFoldersRoot if public else Root
    if parent is None:
        from exchangelib.properties import Mailbox

        parent_id: Any = DistinguishedFolderId(id="publicfoldersroot") if public else \
            DistinguishedFolderId(id="msgfolderroot", mailbox=Mailbox(email_address=account.primary_smtp_address))
    else:
        parent_id = FolderId(id=parent)
    root = root_cls(account=account, id="browse")
    parent_folder = Folder(root=root, _id=parent_id) if parent is not None else root_cls(account=account, _id=parent_id)
    fields = [Folder.get_field_by_fieldname(n) for n in ("name", "folder_class", "child_folder_count")]
    from exchangelib.fields import FieldPath

    from spokesync.connectors.exchange import routing

    class RoutedFindFolder(routing.Routed, FindFolder):  # type: ignore[misc]
        pass

    try:
        hierarchy = routing.hierarchy_headers(account, settings.ews_url) \
            if public and settings.public_folder_mailboxes else None
        with routing.headers(hierarchy):
            found = list(RoutedFindFolder(account=account, page_size=1000).call(
                folders=[parent_folder], additional_fields={FieldPath(field=f) for f in fields}, restriction=None,
                shape="IdOnly", depth="Shallow", max_items=None, offset=0))
    except Exception as exc:
        raise describe(exc, settings) from exc
    out = []
    for folder in found:
        if isinstance(folder, Exception):
            raise describe(folder, settings)
        info = FolderInfo(folder.id, folder.name or "", folder.folder_class or "IPF.Note",
                          int(folder.child_folder_count or 0), public)
        if info.kind in kinds or info.child_count > 0:
            out.append(info)
    return out
