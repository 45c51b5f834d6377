"""All configuration, read from environment variables in this one place.

Every setting has an embedded default so that `spokesync serve` runs on one
machine with nothing configured. `Config.from_env()` is the only function in
the package that reads `os.environ` for settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "spokesync")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Config:
    # "local": SQLite, local secret file, in-process queue. "cloud": Firestore,
    # Secret Manager, Cloud Tasks.
    backend: str = "local"
    data_dir: str = field(default_factory=_default_data_dir)
    # --- local backends
    sqlite_path: str = ""  # default: <data_dir>/hub.sqlite3
    secret_file: str = ""  # default: <data_dir>/secrets.enc
    secret_key_file: str = ""  # default: <data_dir>/secret.key (or SPOKESYNC_SECRET_KEY)
    secret_key: str = ""
    # --- runs
    run_budget_s: float = 480.0  # a run commits and re-enqueues itself after this
    lease_ttl_s: float = 600.0  # > run budget: a crashed run's lease expires
    default_poll_interval_s: int = 300
    quota_retry_s: int = 3 * 3600  # a spoke paused by a quota error is polled again after this
    # --- web / auth
    admin_token: str = ""  # local admin token for setup (generated if empty)
    task_token: str = ""  # local shared token for sync_spoke / scheduler calls
    public_url: str = "http://127.0.0.1:8080"  # where this deployment is reachable
    webhook_url: str = ""  # Google push notifications are sent here
    # Host names besides public_url's that may address setup (e.g. the function's run.app name behind a
    # custom domain). Every other Host is refused: the DNS-rebinding defence (web.security).
    allowed_hosts: tuple[str, ...] = ()
    # The largest answer read from Exchange, Graph or Google (decompressed bytes; http_limits).
    max_response_bytes: int = 32 << 20
    # --- Google
    google_api_root: str = "https://www.googleapis.com/"
    google_people_api_root: str = "https://people.googleapis.com/"  # People API (contacts) has its own host
    google_oauth_auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    google_oauth_token_uri: str = "https://oauth2.googleapis.com/token"
    google_client_id: str = ""
    google_client_secret: str = ""  # only via secret env var in the cloud
    google_channel_ttl_s: int = 604800
    google_channel_renew_before_s: int = 86400
    # Rate-limit / 5xx backoff inside one run: first delay, and the most time spent waiting.
    google_backoff_s: float = 1.0
    google_retry_budget_s: float = 60.0
    # --- Exchange
    exchange_allow_http: bool = False
    exchange_allowed_cidrs: tuple[str, ...] = ()
    # ports an EWS or token URL may use besides 443 (and 80 with allow_http); hosts inside
    # exchange_allowed_cidrs may use any port (the administrator allow-listed that network)
    exchange_allowed_ports: tuple[int, ...] = ()
    # --- Microsoft 365 (Graph)
    graph_authority_host: str = "https://login.microsoftonline.com"
    graph_api_root: str = "https://graph.microsoft.com/v1.0"
    graph_ca_bundle: str = ""  # a CA file for a local Graph server (tests, demo); empty: the system's
    graph_retry_budget_s: float = 60.0  # time a run may wait for Retry-After before it stops (Throttled)
    graph_sub_ttl_s: int = 4200 * 60  # Outlook resources allow at most 4230 minutes
    graph_sub_renew_before_s: int = 12 * 3600
    # --- Google Cloud
    gcp_project: str = ""
    gcp_location: str = ""
    firestore_database: str = "(default)"
    firestore_prefix: str = ""  # collection-name prefix (tests isolate with it)
    secret_prefix: str = "spokesync-"
    tasks_queue: str = ""  # projects/P/locations/L/queues/Q
    tasks_endpoint: str = ""  # emulator host:port for tests
    sync_url: str = ""  # the sync_spoke function's URL (Tasks target)
    tasks_service_account: str = ""  # OIDC identity Tasks and Scheduler call with
    # The queue itself sets the target URL and the OIDC token (Cloud Tasks queue-level routing, terraform):
    # tasks are created without a token, so no function needs actAs on the invoker account.
    tasks_queue_auth: bool = False
    oidc_audience: str = ""
    secret_manager_endpoint: str = ""  # local Secret Manager host:port (tests, demo)
    tasks_coalesce_s: float = 10.0  # sync requests for one spoke within this window share one task
    # How sync_spoke / the scheduler entry authenticate callers: "oidc" (Google-signed
    # identity token of tasks_service_account for oidc_audience) or "token" (task_token).
    # Empty: "oidc" with the cloud backend, "token" otherwise.
    auth_mode: str = ""
    oidc_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    admin_emails: tuple[str, ...] = ()  # identities allowed to use setup (identity token or IAP)
    scheduler_audience: str = ""  # the scheduler function's URL (Cloud Scheduler's OIDC audience)
    iap_audience: str = ""  # /projects/NUMBER/global/backendServices/ID when setup sits behind IAP
    iap_certs_url: str = "https://www.gstatic.com/iap/verify/public_key"  # {kid: PEM}: no pyjwt needed

    @property
    def effective_auth_mode(self) -> str:
        return self.auth_mode or ("oidc" if self.backend == "cloud" else "token")

    @property
    def sqlite_file(self) -> str:
        return self.sqlite_path or str(Path(self.data_dir) / "hub.sqlite3")

    @property
    def secrets_file(self) -> str:
        return self.secret_file or str(Path(self.data_dir) / "secrets.enc")

    @property
    def secrets_key_file(self) -> str:
        return self.secret_key_file or str(Path(self.data_dir) / "secret.key")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        e = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return e.get(f"SPOKESYNC_{name}", default)

        d = cls()
        return cls(
            backend=get("BACKEND", d.backend),
            data_dir=get("DATA_DIR", d.data_dir),
            sqlite_path=get("SQLITE_PATH"),
            secret_file=get("SECRET_FILE"),
            secret_key_file=get("SECRET_KEY_FILE"),
            secret_key=get("SECRET_KEY"),
            run_budget_s=float(get("RUN_BUDGET_S", str(d.run_budget_s))),
            lease_ttl_s=float(get("LEASE_TTL_S", str(d.lease_ttl_s))),
            default_poll_interval_s=int(get("POLL_INTERVAL_S", str(d.default_poll_interval_s))),
            quota_retry_s=int(get("QUOTA_RETRY_S", str(d.quota_retry_s))),
            admin_token=get("ADMIN_TOKEN"),
            task_token=get("TASK_TOKEN"),
            public_url=get("PUBLIC_URL", d.public_url),
            webhook_url=get("WEBHOOK_URL"),
            allowed_hosts=tuple(h.strip().lower() for h in get("ALLOWED_HOSTS").split(",") if h.strip()),
            max_response_bytes=int(float(get("MAX_RESPONSE_MB", str(d.max_response_bytes >> 20))) * (1 << 20)),
            google_api_root=get("GOOGLE_API_ROOT", d.google_api_root),
            google_people_api_root=get("GOOGLE_PEOPLE_API_ROOT", d.google_people_api_root),
            google_oauth_auth_uri=get("GOOGLE_OAUTH_AUTH_URI", d.google_oauth_auth_uri),
            google_oauth_token_uri=get("GOOGLE_OAUTH_TOKEN_URI", d.google_oauth_token_uri),
            google_client_id=get("GOOGLE_CLIENT_ID"),
            google_client_secret=get("GOOGLE_CLIENT_SECRET"),
            google_channel_ttl_s=int(get("GOOGLE_CHANNEL_TTL_S", str(d.google_channel_ttl_s))),
            google_channel_renew_before_s=int(get("GOOGLE_CHANNEL_RENEW_BEFORE_S", str(d.google_channel_renew_before_s))),
            google_backoff_s=float(get("GOOGLE_BACKOFF_S", str(d.google_backoff_s))),
            google_retry_budget_s=float(get("GOOGLE_RETRY_BUDGET_S", str(d.google_retry_budget_s))),
            exchange_allow_http=_bool(get("EXCHANGE_ALLOW_HTTP"), d.exchange_allow_http),
            exchange_allowed_cidrs=tuple(c.strip() for c in get("EXCHANGE_ALLOWED_CIDRS").split(",") if c.strip()),
            exchange_allowed_ports=tuple(int(p) for p in get("EXCHANGE_ALLOWED_PORTS").split(",") if p.strip()),
            graph_authority_host=get("GRAPH_AUTHORITY_HOST", d.graph_authority_host),
            graph_api_root=get("GRAPH_API_ROOT", d.graph_api_root),
            graph_ca_bundle=get("GRAPH_CA_BUNDLE"),
            graph_retry_budget_s=float(get("GRAPH_RETRY_BUDGET_S", str(d.graph_retry_budget_s))),
            graph_sub_ttl_s=int(get("GRAPH_SUB_TTL_S", str(d.graph_sub_ttl_s))),
            graph_sub_renew_before_s=int(get("GRAPH_SUB_RENEW_BEFORE_S", str(d.graph_sub_renew_before_s))),
            gcp_project=get("GCP_PROJECT", e.get("GOOGLE_CLOUD_PROJECT", "")),
            gcp_location=get("GCP_LOCATION"),
            firestore_database=get("FIRESTORE_DATABASE", d.firestore_database),
            firestore_prefix=get("FIRESTORE_PREFIX"),
            secret_prefix=get("SECRET_PREFIX", d.secret_prefix),
            tasks_queue=get("TASKS_QUEUE"),
            tasks_endpoint=get("TASKS_ENDPOINT"),
            sync_url=get("SYNC_URL"),
            tasks_service_account=get("TASKS_SERVICE_ACCOUNT"),
            tasks_queue_auth=_bool(get("TASKS_QUEUE_AUTH"), d.tasks_queue_auth),
            oidc_audience=get("OIDC_AUDIENCE"),
            secret_manager_endpoint=get("SECRET_MANAGER_ENDPOINT"),
            tasks_coalesce_s=float(get("TASKS_COALESCE_S", str(d.tasks_coalesce_s))),
            auth_mode=get("AUTH_MODE"),
            oidc_certs_url=get("OIDC_CERTS_URL", d.oidc_certs_url),
            admin_emails=tuple(a.strip().lower() for a in get("ADMIN_EMAILS").split(",") if a.strip()),
            scheduler_audience=get("SCHEDULER_AUDIENCE"),
            iap_audience=get("IAP_AUDIENCE"),
            iap_certs_url=get("IAP_CERTS_URL", d.iap_certs_url),
        )
