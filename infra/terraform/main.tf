/**
 * spokesync on Google Cloud: one `terraform apply` deploys the four HTTP
 * functions (setup, sync_spoke, push_webhook, scheduler), Firestore and its
 * indexes, the Cloud Tasks queue, the Cloud Scheduler jobs, Secret Manager
 * access and, optionally, a VPC connector for on-premises Exchange.
 *
 * Topic files: firestore.tf, secrets.tf, tasks.tf (queue and scheduler jobs),
 * network.tf (VPC connector), iam.tf (service accounts and grants).
 * tests/infra checks this configuration against the code offline.
 */

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  repo_root      = abspath("${path.module}/../..")
  project_number = data.google_project.this.number

  labels = merge(var.labels, { app = "spokesync", deployment = var.name_prefix })

  # Every function of the deployment: the directory under functions/ whose
  # main.py it runs, the entry point (a def in that main.py), its own
  # environment beyond local.common_env, and the secret environment variables
  # it receives (keys of local.secret_env_sources). tests/infra reads this map.
  functions = {
    setup = {
      dir         = "setup"
      entry_point = "setup"
      description = "spokesync setup API and wizard (private: setup_invokers only)"
      env         = {}
      secrets     = ["SPOKESYNC_GOOGLE_CLIENT_SECRET"]
    }
    sync_spoke = {
      dir         = "sync_spoke"
      entry_point = "sync_spoke"
      description = "spokesync: one sync run of one spoke (Cloud Tasks target, OIDC only, internal ingress)"
      env         = {}
      secrets     = ["SPOKESYNC_GOOGLE_CLIENT_SECRET"]
    }
    push_webhook = {
      dir         = "push_webhook"
      entry_point = "push_webhook"
      description = "spokesync: Google Calendar push notifications (public; trusts only channel id + token)"
      env         = {}
      secrets     = []
    }
    scheduler = {
      dir         = "sync_spoke"
      entry_point = "scheduler"
      description = "spokesync: scheduled polls and push-channel renewal (Cloud Scheduler target, OIDC only, internal ingress)"
      env         = {}
      secrets     = ["SPOKESYNC_GOOGLE_CLIENT_SECRET"]
    }
  }

  # Short names: service account ids are limited to 30 characters.
  short_names = {
    setup        = "setup"
    sync_spoke   = "sync"
    push_webhook = "webhook"
    scheduler    = "sched"
  }

  function_names = { for k, _ in local.functions : k => "${var.name_prefix}-${replace(k, "_", "-")}" }

  # Cloud Run's deterministic URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app,
  # is known before the functions exist. That lets every function be told the
  # others' addresses (and sync_spoke its own, for continuations) without a
  # dependency cycle, and it is an audience Cloud Run accepts for OIDC tokens.
  function_urls = { for k, n in local.function_names : k => "https://${n}-${local.project_number}.${var.region}.run.app" }

  setup_public_url = var.setup_public_url != "" ? var.setup_public_url : local.function_urls.setup
  sync_host        = trimprefix(local.function_urls.sync_spoke, "https://")
  webhook_url      = var.webhook_url != "" ? var.webhook_url : local.function_urls.push_webhook

  # Environment every function gets: the cloud backends and the settings of
  # spokesync.config.Config.from_env. tests/infra fails when the code reads a
  # SPOKESYNC_* variable that is set nowhere here (or lists why it is not).
  common_env = {
    SPOKESYNC_BACKEND                       = "cloud"
    SPOKESYNC_DATA_DIR                      = "/tmp/spokesync"
    SPOKESYNC_GCP_PROJECT                   = var.project_id
    SPOKESYNC_GCP_LOCATION                  = var.region
    SPOKESYNC_FIRESTORE_DATABASE            = google_firestore_database.this.name
    SPOKESYNC_FIRESTORE_PREFIX              = var.firestore.collection_prefix
    SPOKESYNC_SECRET_PREFIX                 = var.secret_prefix
    SPOKESYNC_TASKS_QUEUE                   = google_cloud_tasks_queue.sync.id
    SPOKESYNC_SYNC_URL                      = local.function_urls.sync_spoke
    SPOKESYNC_TASKS_SERVICE_ACCOUNT         = google_service_account.invoker.email
    SPOKESYNC_OIDC_AUDIENCE                 = local.function_urls.sync_spoke
    SPOKESYNC_SCHEDULER_AUDIENCE            = local.function_urls.scheduler
    SPOKESYNC_PUBLIC_URL                    = local.setup_public_url
    SPOKESYNC_ALLOWED_HOSTS                 = trimprefix(local.function_urls.setup, "https://")
    SPOKESYNC_TASKS_QUEUE_AUTH              = "true"
    SPOKESYNC_MAX_RESPONSE_MB               = tostring(var.sync.max_response_mb)
    SPOKESYNC_WEBHOOK_URL                   = local.webhook_url
    SPOKESYNC_RUN_BUDGET_S                  = tostring(var.sync.run_budget_s)
    SPOKESYNC_LEASE_TTL_S                   = tostring(var.sync.lease_ttl_s)
    SPOKESYNC_POLL_INTERVAL_S               = tostring(var.sync.poll_interval_s)
    SPOKESYNC_QUOTA_RETRY_S                 = tostring(var.sync.quota_retry_s)
    SPOKESYNC_GOOGLE_CLIENT_ID              = var.google_oauth_client_id
    SPOKESYNC_GOOGLE_CHANNEL_TTL_S          = tostring(var.sync.google_channel_ttl_s)
    SPOKESYNC_GOOGLE_CHANNEL_RENEW_BEFORE_S = tostring(var.sync.google_channel_renew_before_s)
    SPOKESYNC_EXCHANGE_ALLOW_HTTP           = var.exchange.allow_http ? "true" : "false"
    SPOKESYNC_EXCHANGE_ALLOWED_CIDRS        = join(",", var.exchange.allowed_cidrs)
    SPOKESYNC_EXCHANGE_ALLOWED_PORTS        = join(",", [for p in var.exchange.allowed_ports : tostring(p)])
    SPOKESYNC_GOOGLE_BACKOFF_S              = tostring(var.sync.google_backoff_s)
    SPOKESYNC_GOOGLE_RETRY_BUDGET_S         = tostring(var.sync.google_retry_budget_s)
    SPOKESYNC_GRAPH_RETRY_BUDGET_S          = tostring(var.sync.graph_retry_budget_s)
    SPOKESYNC_GRAPH_SUB_TTL_S               = tostring(var.sync.graph_sub_ttl_s)
    SPOKESYNC_GRAPH_SUB_RENEW_BEFORE_S      = tostring(var.sync.graph_sub_renew_before_s)
    SPOKESYNC_TASKS_COALESCE_S              = tostring(var.queue.coalesce_s)
    SPOKESYNC_AUTH_MODE                     = "oidc"
    SPOKESYNC_ADMIN_EMAILS                  = join(",", var.setup_admin_emails)
    SPOKESYNC_IAP_AUDIENCE                  = var.setup_iap_audience
  }

  # Secret environment variables: name -> Secret Manager secret and version.
  secret_env_sources = {
    SPOKESYNC_GOOGLE_CLIENT_SECRET = {
      secret  = google_secret_manager_secret.google_oauth_client_secret.secret_id
      version = google_secret_manager_secret_version.google_oauth_client_secret.version
    }
  }
}

# --- APIs

locals {
  apis = concat([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ], local.create_vpc_connector ? ["vpcaccess.googleapis.com"] : [])
}

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  project = var.project_id
  service = each.value

  # Other workloads in the project may use the same APIs.
  disable_on_destroy = false
}

# --- build: source bucket and image repository

resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62:The bucket holds only the function zips built from this repository; who deployed what is already in the Cloud Audit Logs (admin activity), and an access-log bucket would add a second bucket to run for no new information.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = local.labels

  versioning {
    enabled = true
  }

  # Each code change uploads a zip under a new name; old zips and old
  # versions are only needed for a rollback.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 180
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84:The images hold only this repository's code and public packages, no customer data or secrets; Google-managed encryption at rest applies. A customer-managed key would add a KMS key ring and its cost to a small-office deployment for no confidentiality gain.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Images built for the spokesync functions"
  format        = "DOCKER"
  labels        = local.labels

  # Every deploy builds a new image per function: keep the last few.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 3
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}

# --- the functions

module "function" {
  source   = "./modules/http_function"
  for_each = local.functions

  project_id  = var.project_id
  region      = var.region
  name        = local.function_names[each.key]
  description = each.value.description
  runtime     = var.runtime
  entry_point = each.value.entry_point
  labels      = local.labels

  code = {
    function_dir      = "${local.repo_root}/functions/${each.value.dir}"
    package_dir       = "${local.repo_root}/shared/spokesync"
    package_name      = "spokesync"
    requirements_file = "${local.repo_root}/requirements.txt"
    build_dir         = "${path.module}/.build"
  }
  source_bucket         = google_storage_bucket.sources.name
  build_service_account = google_service_account.build.id
  docker_repository     = google_artifact_registry_repository.functions.id

  service_account_email = google_service_account.function[each.key].email
  settings              = var.functions[each.key]
  environment           = merge(local.common_env, each.value.env)
  secret_environment    = { for name in each.value.secrets : name => local.secret_env_sources[name] }

  vpc_connector        = contains(local.vpc_functions, each.key) ? local.vpc_connector_id : null
  vpc_connector_egress = try(var.exchange.vpc_connector.egress, "PRIVATE_RANGES_ONLY")

  depends_on = [
    google_project_service.api,
    google_project_iam_member.build,
    google_storage_bucket_iam_member.build_reads_sources,
    google_artifact_registry_repository_iam_member.build_writes_images,
    google_secret_manager_secret_iam_member.google_oauth_client_secret,
  ]
}

# A sync run commits and re-enqueues itself after run_budget_s; Cloud Tasks
# waits run_budget_s + 120 s for the answer (queue/cloud_tasks.py,
# DEADLINE_MARGIN_S): the function must not be stopped before that.
resource "terraform_data" "settings_guard" {
  input = var.sync.run_budget_s

  lifecycle {
    precondition {
      condition     = var.functions.sync_spoke.timeout_s >= min(1800, var.sync.run_budget_s + 120)
      error_message = "functions.sync_spoke.timeout_s must be at least sync.run_budget_s + 120 s (the Cloud Tasks dispatch deadline the code sets), so a run can commit and re-enqueue itself before it is stopped."
    }
    precondition {
      condition     = !startswith(local.google_oauth_client_secret_id, var.secret_prefix)
      error_message = "The OAuth client secret's id must not start with secret_prefix: the application may delete secrets under that prefix."
    }
  }
}

# --- who may call which function (roles/run.invoker on its Cloud Run service)

locals {
  invokers = {
    # Google's push notifications carry no Google identity: the webhook is
    # public and authenticates each notification by channel id + token.
    "push_webhook/allUsers" = { function = "push_webhook", member = "allUsers" }
    # Cloud Tasks and Cloud Scheduler call with OIDC tokens of the invoker SA.
    "sync_spoke/invoker" = { function = "sync_spoke", member = "serviceAccount:${google_service_account.invoker.email}" }
    "scheduler/invoker"  = { function = "scheduler", member = "serviceAccount:${google_service_account.invoker.email}" }
  }
  setup_invokers = { for m in var.setup_invokers : "setup/${m}" => { function = "setup", member = m } }
}

resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = merge(local.invokers, local.setup_invokers)

  project  = var.project_id
  location = var.region
  name     = module.function[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
