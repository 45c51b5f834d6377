"""infra/terraform checked against the code, offline (no terraform binary).

python-hcl2 parses every file; the tests then check what a `terraform apply`
would get wrong without failing: entry points that do not exist, settings the
code reads that nobody sets, a private function made public, OIDC calls with
the wrong identity or audience, a query without its index, and Terraform
defaults that drifted from the code's.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra import hcl

ROOT = hcl.ROOT
CONFIG_PY = ROOT / "shared" / "spokesync" / "config.py"
INDEXES_PY = ROOT / "shared" / "spokesync" / "stores" / "firestore_indexes.py"

# SPOKESYNC_* variables deliberately not set in the cloud, and why. A variable
# the code reads must be set by infra/terraform or listed here; a stale entry
# (no longer read) fails too.
NOT_SET_IN_CLOUD = {
    "SQLITE_PATH": "local backend only (SQLite hub store)",
    "SECRET_FILE": "local backend only (encrypted secret file)",
    "SECRET_KEY_FILE": "local backend only (key of the secret file)",
    "SECRET_KEY": "local backend only (key of the secret file)",
    "ADMIN_TOKEN": "local admin token; in the cloud setup sits behind IAM (roles/run.invoker) and identity tokens",
    "TASK_TOKEN": "local shared token; in the cloud Tasks and Scheduler call with OIDC tokens",
    "TASKS_ENDPOINT": "address of the Cloud Tasks emulator in tests",
    "GOOGLE_API_ROOT": "points the Calendar client at the local sandbox; production uses Google's endpoint (the default)",
    "GOOGLE_PEOPLE_API_ROOT": "points the People API (contacts) client at the local sandbox; production uses "
                              "Google's endpoint (the default)",
    "GOOGLE_OAUTH_AUTH_URI": "points OAuth at the local sandbox; production uses Google's endpoint (the default)",
    "GOOGLE_OAUTH_TOKEN_URI": "points OAuth at the local sandbox; production uses Google's endpoint (the default)",
    "OIDC_CERTS_URL": "Google's signing keys (the default); overridden only by tests",
    "IAP_CERTS_URL": "IAP's signing keys (the default); overridden only by tests",
    "SECRET_MANAGER_ENDPOINT": "address of the local Secret Manager server in tests",
    "GRAPH_API_ROOT": "points the Graph client at the local sandbox; production uses Microsoft's endpoint (the default)",
    "GRAPH_AUTHORITY_HOST": "points MSAL at the local sandbox; production uses login.microsoftonline.com (the default)",
    "GRAPH_CA_BUNDLE": "the local Graph sandbox's CA in tests; production trusts the system's CAs",
}
# Per function: variables one function does not need although the others get them.
NOT_GIVEN_TO = {
    ("push_webhook", "GOOGLE_CLIENT_SECRET"): "the public webhook never calls Google: it checks a channel and enqueues",
}
# Settings that hold secrets: only ever through Secret Manager (secret environment variables).
SECRET_SETTINGS = {"GOOGLE_CLIENT_SECRET", "SECRET_KEY", "ADMIN_TOKEN", "TASK_TOKEN"}


@pytest.fixture(scope="module")
def tf() -> hcl.Config:
    return hcl.load()


@pytest.fixture(scope="module")
def module_tf() -> hcl.Config:
    return hcl.load(hcl.MODULE_DIR)


def code_settings() -> set[str]:
    """Every NAME in `get("NAME", ...)` inside Config.from_env: the SPOKESYNC_* variables the code reads."""
    tree = ast.parse(CONFIG_PY.read_text(encoding="utf-8"))
    from_env = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "from_env")
    names = {
        call.args[0].value
        for call in ast.walk(from_env)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "get"
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    }
    assert len(names) > 20, "found too few get(...) calls in Config.from_env: has config.py changed shape?"
    return names


def code_defaults() -> Any:
    sys.path.insert(0, str(ROOT / "shared"))
    from spokesync.config import Config

    return Config()


def function_env(tf: hcl.Config, name: str) -> tuple[set[str], set[str]]:
    """(plain, secret) SPOKESYNC_* names one function gets."""
    fn = tf.locals["functions"][name]
    plain = set(tf.locals["common_env"]) | set(fn.get("env") or {})
    secret = set(fn.get("secrets") or [])
    strip = lambda names: {n.removeprefix("SPOKESYNC_") for n in names}  # noqa: E731
    return strip(plain), strip(secret)


# --- the files themselves


def test_every_terraform_file_parses() -> None:
    files = sorted(hcl.TF_DIR.rglob("*.tf")) + [hcl.TF_DIR / "terraform.tfvars.example"]
    assert len(files) >= 10
    for path in files:
        if ".terraform" in path.parts:
            continue
        try:
            hcl.parse_file(path)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{path.relative_to(ROOT)} does not parse: {exc}")


def test_layout_follows_the_module_convention() -> None:
    for directory in (hcl.TF_DIR, hcl.MODULE_DIR):
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (directory / name).is_file(), f"{directory.relative_to(ROOT)}/{name} is missing"
    assert (hcl.TF_DIR / "terraform.tfvars.example").is_file()


def test_providers_and_terraform_are_pinned(tf: hcl.Config, module_tf: hcl.Config) -> None:
    for cfg, where in ((tf, "root"), (module_tf, "http_function")):
        (terraform,) = cfg.terraform
        assert hcl.expr(terraform["required_version"]).startswith(">="), where
        providers = terraform["required_providers"]
        if isinstance(providers, list):
            providers = {k: v for p in providers for k, v in p.items()}
        for name, spec in providers.items():
            version = spec["version"]
            assert "<" in version or "~>" in version, f"{where}: provider {name} has no upper bound: {version!r}"


def test_variables_are_typed_and_documented(tf: hcl.Config) -> None:
    for name, var in tf.variables.items():
        assert var.get("type"), f"variable {name} has no type"
        assert var.get("description"), f"variable {name} has no description"
    validated = {n for n, v in tf.variables.items() if v.get("validation")}
    for name in (
        "project_id",
        "region",
        "name_prefix",
        "secret_prefix",
        "setup_invokers",
        "webhook_url",
        "functions",
        "sync",
        "queue",
        "exchange",
    ):
        assert name in validated, f"variable {name} should validate its value"


def test_tfvars_example_sets_only_declared_variables(tf: hcl.Config) -> None:
    example = hcl.parse_file(hcl.TF_DIR / "terraform.tfvars.example")
    unknown = set(example) - set(tf.variables)
    assert not unknown, f"terraform.tfvars.example sets undeclared variables: {sorted(unknown)}"
    required = {n for n, v in tf.variables.items() if "default" not in v}
    assert required - set(example) == set(), f"the example misses required variables: {sorted(required - set(example))}"


# --- functions: entry points and source zips


def top_level_defs(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_function_entry_point_exists(tf: hcl.Config) -> None:
    functions = tf.locals["functions"]
    assert set(functions) == {"setup", "sync_spoke", "push_webhook", "scheduler"}
    problems = []
    for name, fn in functions.items():
        main = ROOT / "functions" / fn["dir"] / "main.py"
        if not main.is_file():
            problems.append(f"{name}: functions/{fn['dir']}/main.py does not exist (entry point {fn['entry_point']!r})")
            continue
        defs = top_level_defs(main)
        if fn["entry_point"] not in defs:
            problems.append(
                f"{name}: functions/{fn['dir']}/main.py has no top-level def {fn['entry_point']!r} (it defines {sorted(defs)})"
            )
    assert not problems, "entry points in infra/terraform/main.tf local.functions do not match the code:\n" + "\n".join(
        problems
    )


def test_module_builds_the_zip_from_function_package_and_requirements(tf: hcl.Config, module_tf: hcl.Config) -> None:
    call = tf.modules["function"]
    assert hcl.expr(call["for_each"]) == "local.functions"
    assert hcl.expr(call["entry_point"]) == "each.value.entry_point"
    code = call["code"]
    assert code["function_dir"].endswith("/functions/${each.value.dir}")
    assert code["package_dir"].endswith("/shared/spokesync")
    assert code["package_name"] == "spokesync"
    assert code["requirements_file"].endswith("/requirements.txt")
    archive = module_tf.data["archive_file"]["source"]
    assert archive["type"] == "zip"
    fn = module_tf.resource("google_cloudfunctions2_function", "this")
    source = hcl.block(hcl.block(hcl.block(fn, "build_config"), "source"), "storage_source")
    assert "google_storage_bucket_object.source" in hcl.expr(source["object"])
    # The object name carries the zip's hash: a code change redeploys the function.
    obj = module_tf.resource("google_storage_bucket_object", "source")
    assert "output_md5" in hcl.expr(obj["name"])


def zip_members(function_dir: Path) -> dict[str, Path]:
    """What the module puts in a function's zip (the same rules as modules/http_function/main.tf)."""

    def keep(rel: Path) -> bool:
        return not any(p == "__pycache__" or p.startswith(".") for p in rel.parts) and rel.suffix != ".pyc"

    members: dict[str, Path] = {}
    for path in sorted(function_dir.rglob("*")):
        if path.is_file() and keep(path.relative_to(function_dir)):
            members[path.relative_to(function_dir).as_posix()] = path
    package = ROOT / "shared" / "spokesync"
    for path in sorted(package.rglob("*")):
        if path.is_file() and keep(path.relative_to(package)):
            members["spokesync/" + path.relative_to(package).as_posix()] = path
    members["requirements.txt"] = ROOT / "requirements.txt"
    return members


def test_zip_contents_are_text_terraform_can_read(tf: hcl.Config) -> None:
    # The module reads each file with file(), which needs UTF-8: a binary file
    # in the package would fail `terraform plan`. Catch it here first.
    dirs = {fn["dir"] for fn in tf.locals["functions"].values()}
    bad = []
    for d in sorted(dirs):
        for member, path in zip_members(ROOT / "functions" / d).items():
            try:
                path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                bad.append(f"{member} ({path.relative_to(ROOT)})")
    assert not bad, f"files terraform's file() cannot read (not UTF-8): {bad}"


@pytest.mark.parametrize("name", ["setup", "sync_spoke", "push_webhook", "scheduler"])
def test_function_zip_is_self_contained(tf: hcl.Config, tmp_path: Path, name: str) -> None:
    """main.py imports with nothing but the zip's contents on the path (as on Cloud Functions)."""
    fn = tf.locals["functions"][name]
    main = ROOT / "functions" / fn["dir"] / "main.py"
    if not main.is_file():
        pytest.fail(f"functions/{fn['dir']}/main.py does not exist yet")
    for member, path in zip_members(ROOT / "functions" / fn["dir"]).items():
        target = tmp_path / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    script = (
        "import sys; sys.path.insert(0, '.'); import main; "
        f"assert callable(getattr(main, {fn['entry_point']!r})); "
        "import spokesync; assert spokesync.__file__.startswith(sys.path[0]) or 'spokesync' in spokesync.__file__"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOKESYNC_") and k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{name}: importing main from the zip layout failed:\n{result.stderr[-2000:]}"


def test_requirements_include_the_functions_framework() -> None:
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^functions-framework==", requirements, re.M), (
        "Cloud Functions' Python runtime needs functions-framework"
    )


# --- configuration: every setting the code reads


def test_every_setting_the_code_reads_is_set_or_explained(tf: hcl.Config) -> None:
    read = code_settings()
    stale = set(NOT_SET_IN_CLOUD) - read
    assert not stale, f"NOT_SET_IN_CLOUD lists variables config.py no longer reads: {sorted(stale)}"
    problems = []
    for name in tf.locals["functions"]:
        plain, secret = function_env(tf, name)
        given = plain | secret
        for setting in sorted(read - set(NOT_SET_IN_CLOUD)):
            if setting not in given and (name, setting) not in NOT_GIVEN_TO:
                problems.append(f"{name}: SPOKESYNC_{setting} is read by Config.from_env but not set")
        for setting in sorted(given & set(NOT_SET_IN_CLOUD)):
            problems.append(f"{name}: SPOKESYNC_{setting} is set although NOT_SET_IN_CLOUD says it is local-only")
        for setting in sorted(given - read):
            problems.append(f"{name}: SPOKESYNC_{setting} is set but config.py never reads it (typo or stale)")
    assert not problems, "infra/terraform does not configure what the code reads:\n" + "\n".join(problems)


def test_secrets_arrive_only_as_secret_environment_variables(tf: hcl.Config) -> None:
    for name in tf.locals["functions"]:
        plain, secret = function_env(tf, name)
        assert not (plain & SECRET_SETTINGS), f"{name}: secret settings in plain env: {plain & SECRET_SETTINGS}"
        for setting in secret:
            assert f"SPOKESYNC_{setting}" in tf.locals["secret_env_sources"], f"{name}: no source for secret {setting}"
    call = tf.modules["function"]
    assert hcl.expr(call["environment"]) == "merge(local.common_env, each.value.env)"
    assert "each.value.secrets" in hcl.expr(call["secret_environment"])
    assert "local.secret_env_sources" in hcl.expr(call["secret_environment"])
    version = tf.resource("google_secret_manager_secret_version", "google_oauth_client_secret")
    assert "secret_data" not in version, "use the write-only secret_data_wo: secret_data lands in the state"
    assert hcl.expr(version["secret_data_wo"]) == "var.google_oauth_client_secret"
    var = tf.variables["google_oauth_client_secret"]
    assert var.get("sensitive") is True and var.get("ephemeral") is True


def test_cloud_backend_and_addresses(tf: hcl.Config) -> None:
    env = tf.locals["common_env"]
    assert env["SPOKESYNC_BACKEND"] == "cloud"
    assert hcl.expr(env["SPOKESYNC_SYNC_URL"]) == "local.function_urls.sync_spoke"
    assert hcl.expr(env["SPOKESYNC_WEBHOOK_URL"]) == "local.webhook_url"
    assert hcl.expr(env["SPOKESYNC_TASKS_QUEUE"]) == "google_cloud_tasks_queue.sync.id"
    assert hcl.expr(env["SPOKESYNC_FIRESTORE_DATABASE"]) == "google_firestore_database.this.name"
    assert hcl.expr(env["SPOKESYNC_FIRESTORE_PREFIX"]) == "var.firestore.collection_prefix"
    assert hcl.expr(env["SPOKESYNC_SECRET_PREFIX"]) == "var.secret_prefix"
    urls = hcl.expr(tf.locals["function_urls"])
    # Cloud Run's deterministic URL: known before the function exists, accepted as OIDC audience.
    assert "${n}-${local.project_number}.${var.region}.run.app" in urls


def test_terraform_defaults_match_the_code_defaults(tf: hcl.Config) -> None:
    d = code_defaults()
    sync = hcl.optional_defaults(tf.variables["sync"])
    assert sync["run_budget_s"] == d.run_budget_s
    assert sync["lease_ttl_s"] == d.lease_ttl_s
    assert sync["poll_interval_s"] == d.default_poll_interval_s
    assert sync["google_channel_ttl_s"] == d.google_channel_ttl_s
    assert sync["google_channel_renew_before_s"] == d.google_channel_renew_before_s
    assert sync["google_backoff_s"] == d.google_backoff_s
    assert sync["google_retry_budget_s"] == d.google_retry_budget_s
    assert hcl.optional_defaults(tf.variables["queue"])["coalesce_s"] == d.tasks_coalesce_s
    assert tf.variables["secret_prefix"]["default"] == d.secret_prefix
    assert hcl.optional_defaults(tf.variables["firestore"])["database"] == d.firestore_database
    exchange = hcl.optional_defaults(tf.variables["exchange"])
    assert exchange["allow_http"] == d.exchange_allow_http
    assert tuple(exchange["allowed_cidrs"]) == d.exchange_allowed_cidrs
    assert tuple(exchange["allowed_ports"]) == d.exchange_allowed_ports


def test_sync_function_outlives_the_task_deadline(tf: hcl.Config) -> None:
    sys.path.insert(0, str(ROOT / "shared"))
    from spokesync.queue.cloud_tasks import dispatch_deadline_s

    sync = hcl.optional_defaults(tf.variables["sync"])
    functions = hcl.optional_defaults(tf.variables["functions"])
    deadline = dispatch_deadline_s(sync["run_budget_s"])
    assert functions["sync_spoke"]["timeout_s"] >= deadline, (
        f"sync_spoke's timeout ({functions['sync_spoke']['timeout_s']} s) is shorter than the dispatch deadline "
        f"the code gives Cloud Tasks ({deadline} s)"
    )
    guard = tf.resource("terraform_data", "settings_guard")
    conditions = " ".join(hcl.expr(p["condition"]) for p in guard["lifecycle"][0]["precondition"])
    assert "var.functions.sync_spoke.timeout_s" in conditions and "var.sync.run_budget_s + 120" in conditions
    # The margin in the precondition is the code's margin.
    from spokesync.queue import cloud_tasks

    assert cloud_tasks.DEADLINE_MARGIN_S == 120.0, "update the settings_guard precondition in main.tf"


# --- who may call what


def invoker_members(tf: hcl.Config) -> dict[str, set[str]]:
    by_function: dict[str, set[str]] = {}
    for entry in tf.locals["invokers"].values():
        by_function.setdefault(entry["function"], set()).add(hcl.expr(entry["member"]))
    return by_function


def test_only_the_webhook_is_public(tf: hcl.Config) -> None:
    members = invoker_members(tf)
    public = {fn for fn, ms in members.items() if ms & {"allUsers", "allAuthenticatedUsers"}}
    assert public == {"push_webhook"}
    assert members["push_webhook"] == {"allUsers"}
    # setup is granted only to the members the admin lists, and the variable refuses allUsers.
    assert hcl.expr(tf.locals["setup_invokers"]).endswith('{function = "setup", member = m}}')
    condition = hcl.expr(tf.variables["setup_invokers"]["validation"][0]["condition"])
    assert "^(user|group|serviceAccount|domain):" in condition
    iam = tf.resource("google_cloud_run_v2_service_iam_member", "invoker")
    assert iam["role"] == "roles/run.invoker"
    assert hcl.expr(iam["for_each"]) == "merge(local.invokers, local.setup_invokers)"
    # No other IAM grant on the functions' services or on functions.
    for rtype in tf.resources:
        assert not rtype.startswith("google_cloudfunctions2_function_iam"), rtype
        if rtype.startswith("google_cloud_run"):
            assert rtype == "google_cloud_run_v2_service_iam_member", rtype
    for rtype, named in tf.resources.items():
        for rname, body in named.items():
            for key in ("member", "members"):
                value = str(body.get(key, ""))
                assert "allUsers" not in value and "allAuthenticatedUsers" not in value, f"{rtype}.{rname} is public"


def test_private_functions_are_invoked_only_by_the_invoker_account(tf: hcl.Config) -> None:
    members = invoker_members(tf)
    invoker = "serviceAccount:${google_service_account.invoker.email}"
    assert members["sync_spoke"] == {invoker}
    assert members["scheduler"] == {invoker}
    assert "setup" not in members  # setup: only var.setup_invokers


def test_each_function_runs_as_its_own_service_account(tf: hcl.Config, module_tf: hcl.Config) -> None:
    call = tf.modules["function"]
    assert hcl.expr(call["service_account_email"]) == "google_service_account.function[each.key].email"
    assert hcl.expr(tf.resource("google_service_account", "function")["for_each"]) == "local.functions"
    fn = module_tf.resource("google_cloudfunctions2_function", "this")
    assert hcl.expr(hcl.block(fn, "service_config")["service_account_email"]) == "var.service_account_email"
    assert hcl.expr(hcl.block(fn, "build_config")["service_account"]) == "var.build_service_account"
    # Nothing is granted to the invoker account but invoking.
    for rtype, named in tf.resources.items():
        for rname, body in named.items():
            member = hcl.expr(body.get("member", ""))
            if "google_service_account.invoker" in member:
                pytest.fail(f"{rtype}.{rname} grants something to the invoker account")


def test_tasks_and_scheduler_call_with_oidc_of_the_invoker_account(tf: hcl.Config) -> None:
    env = tf.locals["common_env"]
    assert hcl.expr(env["SPOKESYNC_TASKS_SERVICE_ACCOUNT"]) == "google_service_account.invoker.email"
    assert hcl.expr(env["SPOKESYNC_OIDC_AUDIENCE"]) == "local.function_urls.sync_spoke"
    if "SCHEDULER_AUDIENCE" in code_settings():
        assert hcl.expr(env["SPOKESYNC_SCHEDULER_AUDIENCE"]) == "local.function_urls.scheduler"
    if "AUTH_MODE" in code_settings():
        assert env.get("SPOKESYNC_AUTH_MODE") == "oidc"
    job = tf.resource("google_cloud_scheduler_job", "job")
    target = hcl.block(job, "http_target")
    token = hcl.block(target, "oidc_token")
    assert hcl.expr(token["service_account_email"]) == "google_service_account.invoker.email"
    assert hcl.expr(target["uri"]) == hcl.expr(token["audience"]) == "local.function_urls.scheduler"
    assert "oauth_token" not in target
    # Every function that enqueues may create tasks; none may hand them the invoker's identity itself.
    enqueuer = tf.resource("google_cloud_tasks_queue_iam_member", "enqueuer")
    assert hcl.expr(enqueuer["for_each"]) == "local.functions" and enqueuer["role"] == "roles/cloudtasks.enqueuer"
    assert "google_service_account_iam_member" not in tf.resources  # no actAs on the invoker for anyone
    # ...because the queue routes each task to sync_spoke and adds the invoker's token itself
    target = hcl.block(tf.resource("google_cloud_tasks_queue", "sync"), "http_target")
    override = hcl.block(target, "uri_override")
    assert override["uri_override_enforce_mode"] == "ALWAYS" and override["scheme"] == "HTTPS"
    assert hcl.expr(override["host"]) == "local.sync_host"
    assert hcl.expr(tf.locals["sync_host"]) == 'trimprefix(local.function_urls.sync_spoke, "https://")'
    assert hcl.block(override, "path_override")["path"] == "/"
    queue_token = hcl.block(target, "oidc_token")
    assert hcl.expr(queue_token["service_account_email"]) == "google_service_account.invoker.email"
    assert hcl.expr(queue_token["audience"]) == "local.function_urls.sync_spoke"
    assert env.get("SPOKESYNC_TASKS_QUEUE_AUTH") == "true"


def test_tasks_are_created_without_a_token_when_the_queue_adds_it() -> None:
    from spokesync.config import Config
    from spokesync.ports import SyncTask
    from spokesync.queue.cloud_tasks import CloudTasksQueue

    config = Config(backend="cloud", auth_mode="oidc", sync_url="https://sync.example/", tasks_queue="q",
                    tasks_service_account="invoker@p.iam.gserviceaccount.com")
    with_token = CloudTasksQueue(config, client=object()).build_task(SyncTask("s1"))["http_request"]
    assert with_token["oidc_token"]["service_account_email"] == "invoker@p.iam.gserviceaccount.com"
    routed = CloudTasksQueue(Config(**{**config.__dict__, "tasks_queue_auth": True}), client=object())
    request = routed.build_task(SyncTask("s1"))["http_request"]
    assert "oidc_token" not in request and "Authorization" not in request["headers"]


def test_sync_and_scheduler_accept_internal_traffic_only(tf: hcl.Config) -> None:
    fns = tf.variables["functions"]
    values = hcl.optional_defaults(fns)
    assert values["sync_spoke"]["ingress"] == "ALLOW_INTERNAL_ONLY"
    assert values["scheduler"]["ingress"] == "ALLOW_INTERNAL_ONLY"
    assert values["push_webhook"]["ingress"] == "ALLOW_ALL"  # Google's push comes from the internet
    conditions = [hcl.expr(v["condition"]) for v in fns["validation"]]
    assert any('var.functions.sync_spoke.ingress != "ALLOW_ALL"' in c and
               'var.functions.scheduler.ingress != "ALLOW_ALL"' in c for c in conditions)
    # they are reached only through Cloud Tasks and Cloud Scheduler at their run.app URL, which Cloud Run
    # counts as internal in the same project; no custom domain or load balancer is put in front of them
    for rtype in tf.resources:
        assert "domain_mapping" not in rtype and "backend_service" not in rtype, rtype


def test_the_public_webhook_can_only_read_the_database_and_enqueue(tf: hcl.Config) -> None:
    writers = tf.resource("google_project_iam_member", "firestore_user")
    assert hcl.expr(writers["for_each"]) == "local.firestore_writers"
    assert 'if k != "push_webhook"' in hcl.expr(tf.locals["firestore_writers"])  # the webhook writes nothing
    reader = tf.resource("google_project_iam_member", "webhook_reads_firestore")
    assert reader["role"] == "roles/datastore.viewer"
    assert hcl.expr(reader["member"]) == 'google_service_account.function["push_webhook"].member'
    assert "databases/${google_firestore_database.this.name}" in reader["condition"][0]["expression"]
    # every grant that names the webhook's account: read Firestore, enqueue, write logs (none other)
    roles = set()
    for rtype, named in tf.resources.items():
        for rname, body in named.items():
            member = hcl.expr(body.get("member", ""))
            for_each = hcl.expr(body.get("for_each", ""))
            if "push_webhook" in member or ("google_service_account.function[each.key]" in member
                                            and for_each == "local.functions"):
                roles.add(str(body.get("role")))
    assert roles <= {"roles/datastore.viewer", "roles/cloudtasks.enqueuer", "roles/logging.logWriter"}, roles


def test_scheduler_jobs_are_understood_by_the_scheduler_entry(tf: hcl.Config) -> None:
    jobs = tf.locals["scheduler_jobs"]
    assert {"poll", "renew_channels"} <= set(jobs)
    fn = tf.locals["functions"]["scheduler"]
    main = ROOT / "functions" / fn["dir"] / "main.py"
    if not main.is_file():
        pytest.fail(f"functions/{fn['dir']}/main.py (scheduler entry) does not exist yet")
    # The entry hands the body to service modules: read the ones main.py imports.
    texts = [main.read_text(encoding="utf-8")]
    known_jobs: set[str] = set()
    for node in ast.walk(ast.parse(texts[0])):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spokesync"):
            for alias in node.names:
                for mod in (f"{node.module}.{alias.name}", node.module):
                    base = ROOT / "shared" / Path(*mod.split("."))
                    for path in (base.with_suffix(".py"), base / "__init__.py"):
                        if path.is_file():
                            text = path.read_text(encoding="utf-8")
                            texts.append(text)
                            m = re.search(r"^JOBS\s*=\s*(\(.*?\))", text, re.M | re.S)
                            if m:
                                known_jobs |= set(ast.literal_eval(m.group(1)))
    text = "\n".join(texts)
    for name, job in jobs.items():
        value = job["body"]["job"]
        if known_jobs:
            assert value in known_jobs, f"scheduler job {name} posts job={value!r}; the code knows {sorted(known_jobs)}"
        else:
            assert f'"{value}"' in text or f"'{value}'" in text, (
                f"scheduler job {name} posts job={value!r}, which appears nowhere in the scheduler entry's code"
            )
    # The body is JSON.
    body = hcl.block(tf.resource("google_cloud_scheduler_job", "job"), "http_target")["body"]
    assert hcl.expr(body) == "base64encode(jsonencode(each.value.body))"


# --- Firestore


def normalized_indexes(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for ix in entries:
        fields = tuple((f["field_path"], f.get("order"), f.get("array_config")) for f in ix["fields"])
        out.append((ix["collection"], bool(ix.get("prefixed", True)), ix.get("query_scope", "COLLECTION"), fields))
    return sorted(out)


def load_index_module() -> Any:
    if not INDEXES_PY.is_file():
        pytest.fail(
            "shared/spokesync/stores/firestore_indexes.py does not exist yet: nothing says which indexes to deploy"
        )
    sys.path.insert(0, str(ROOT / "shared"))
    import importlib

    return importlib.import_module("spokesync.stores.firestore_indexes")


def test_every_query_index_the_code_needs_is_deployed(tf: hcl.Config) -> None:
    indexes = load_index_module()
    wanted = normalized_indexes(indexes.COMPOSITE_INDEXES)
    deployed = normalized_indexes(tf.locals["firestore_indexes"])
    missing = [ix for ix in wanted if ix not in deployed]
    extra = [ix for ix in deployed if ix not in wanted]
    assert not missing, f"composite indexes the code needs but infra/terraform/firestore.tf lacks: {missing}"
    assert not extra, f"indexes deployed that firestore_indexes.py no longer lists (cost on every write): {extra}"
    # Every composite index a query names is in the list.
    for query in getattr(indexes, "QUERIES", []):
        if str(query["index"]).startswith("composite:"):
            assert any(ix[0] == query["collection"] for ix in wanted), query
    res = tf.resource("google_firestore_index", "this")
    assert "local.firestore_indexes" in hcl.expr(res["for_each"])
    assert "var.firestore.collection_prefix" in hcl.expr(res["collection"])


def test_field_overrides_are_deployed(tf: hcl.Config) -> None:
    indexes = load_index_module()
    wanted = sorted(
        (o["collection"], bool(o.get("prefixed", True)), o["field"]) for o in getattr(indexes, "FIELD_OVERRIDES", [])
    )
    deployed = sorted(
        (o["collection"], bool(o["prefixed"]), o["field"]) for o in tf.locals["firestore_field_overrides"]
    )
    assert wanted == deployed


def test_firestore_is_native_and_protected(tf: hcl.Config) -> None:
    db = tf.resource("google_firestore_database", "this")
    assert db["type"] == "FIRESTORE_NATIVE"
    assert db["deletion_policy"] == "ABANDON"
    firestore = hcl.optional_defaults(tf.variables["firestore"])
    assert firestore["delete_protection"] is True
    for name in ("firestore_user", "webhook_reads_firestore"):
        grant = tf.resource("google_project_iam_member", name)
        assert grant["role"] in ("roles/datastore.user", "roles/datastore.viewer")
        assert "databases/${google_firestore_database.this.name}" in grant["condition"][0]["expression"]


# --- Secret Manager


def test_secret_access_is_limited_to_the_prefix(tf: hcl.Config) -> None:
    condition = hcl.expr(tf.locals["secret_name_condition"])
    assert (
        'resource.name.startsWith(\\"projects/${local.project_number}/secrets/${var.secret_prefix}\\")' in condition
        or ("resource.name.startsWith" in condition and "${var.secret_prefix}" in condition)
    )
    access = tf.resource("google_project_iam_member", "secret_access")
    assert hcl.expr(access["condition"][0]["expression"]) == "local.secret_name_condition"
    creator = tf.resource("google_project_iam_custom_role", "secret_creator")
    assert creator["permissions"] == ["secretmanager.secrets.create"]
    perms = tf.resource("google_project_iam_custom_role", "secret_manager")["permissions"]
    assert "secretmanager.secrets.create" not in perms
    assert all(p.startswith("secretmanager.") for p in perms)
    assert "secretmanager.secrets.setIamPolicy" not in perms and "secretmanager.secrets.list" not in perms
    role = hcl.expr(access["role"])
    assert role.endswith('? google_project_iam_custom_role.secret_manager.id : "roles/secretmanager.secretAccessor"')
    # Only setup may create; the webhook gets no secret access at all.
    assert tf.locals["secret_access"] == {"setup": "manage", "sync_spoke": "read", "scheduler": "read"}
    assert "roles/secretmanager.admin" not in tf.text
    # The prefix may not be empty (that would be every secret in the project).
    assert "{2,40}" in hcl.expr(tf.variables["secret_prefix"]["validation"][0]["condition"])


def test_oauth_client_secret_lives_outside_the_application_prefix(tf: hcl.Config) -> None:
    secret_id = hcl.expr(tf.locals["google_oauth_client_secret_id"])
    default = secret_id.replace("${var.name_prefix}", tf.variables["name_prefix"]["default"])
    assert not default.startswith(tf.variables["secret_prefix"]["default"])
    guard = tf.resource("terraform_data", "settings_guard")
    conditions = " ".join(hcl.expr(p["condition"]) for p in guard["lifecycle"][0]["precondition"])
    assert "!startswith(local.google_oauth_client_secret_id, var.secret_prefix)" in conditions


# --- queue, network, outputs


def test_queue_has_rate_limits_and_bounded_retries(tf: hcl.Config) -> None:
    queue = tf.resource("google_cloud_tasks_queue", "sync")
    assert hcl.block(queue, "rate_limits")
    retry = hcl.block(queue, "retry_config")
    for key in ("max_attempts", "min_backoff", "max_backoff", "max_retry_duration"):
        assert key in retry
    q = hcl.optional_defaults(tf.variables["queue"])
    assert 1 <= q["max_concurrent_dispatches"] <= 10, "Exchange allows about 10 concurrent requests per user"
    assert q["max_attempts"] > 0 and q["max_retry_duration_s"] > 0


def test_vpc_connector_is_optional_and_only_for_exchange_callers(tf: hcl.Config) -> None:
    connector = tf.resource("google_vpc_access_connector", "exchange")
    assert "local.create_vpc_connector ? 1 : 0" == hcl.expr(connector["count"])
    assert hcl.optional_defaults(tf.variables["exchange"])["vpc_connector"] is None
    assert '["setup", "sync_spoke"]' in hcl.expr(tf.locals["vpc_functions"])


def test_outputs_give_setup_and_webhook_urls(tf: hcl.Config) -> None:
    assert {"setup_url", "webhook_url", "setup_proxy_command"} <= set(tf.outputs)


SECRET_MANAGER_PERMISSIONS = {
    "create_secret": "secretmanager.secrets.create",
    "get_secret": "secretmanager.secrets.get",
    "update_secret": "secretmanager.secrets.update",
    "delete_secret": "secretmanager.secrets.delete",
    "list_secrets": "secretmanager.secrets.list",
    "add_secret_version": "secretmanager.versions.add",
    "access_secret_version": "secretmanager.versions.access",
    "get_secret_version": "secretmanager.versions.get",
    "list_secret_versions": "secretmanager.versions.list",
    "enable_secret_version": "secretmanager.versions.enable",
    "disable_secret_version": "secretmanager.versions.disable",
    "destroy_secret_version": "secretmanager.versions.destroy",
}


def test_setup_may_make_every_secret_manager_call_the_code_makes(tf: hcl.Config) -> None:
    source = (ROOT / "shared" / "spokesync" / "secrets" / "secret_manager.py").read_text(encoding="utf-8")
    calls = set(re.findall(r"\.client\.(\w+)\(", source))
    assert calls, "found no Secret Manager client calls"
    unknown = calls - set(SECRET_MANAGER_PERMISSIONS)
    assert not unknown, f"map these client calls to their IAM permission: {sorted(unknown)}"
    granted = set(tf.resource("google_project_iam_custom_role", "secret_creator")["permissions"]) | set(
        tf.resource("google_project_iam_custom_role", "secret_manager")["permissions"]
    )
    needed = {SECRET_MANAGER_PERMISSIONS[c] for c in calls}
    assert needed <= granted, f"setup lacks {sorted(needed - granted)}"
    assert granted <= needed, f"setup is granted more than the code uses: {sorted(granted - needed)}"
