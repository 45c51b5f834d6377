/**
 * Identities. Each function runs as its own service account with only what
 * its code path needs; Cloud Tasks and Cloud Scheduler call the private
 * functions with OIDC tokens of a separate invoker account that can do
 * nothing but invoke them; Cloud Build builds the images as a build account.
 */

resource "google_service_account" "function" {
  for_each = local.functions

  project      = var.project_id
  account_id   = "${var.name_prefix}-${local.short_names[each.key]}"
  display_name = "spokesync ${each.key} function"
}

resource "google_service_account" "invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-invoker"
  display_name = "spokesync OIDC identity of Cloud Tasks and Cloud Scheduler calls"
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "spokesync Cloud Build (function images)"
}

# --- build account: logs, read the source zips, push the images

resource "google_project_iam_member" "build" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

resource "google_artifact_registry_repository_iam_member" "build_writes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# --- function accounts: Firestore (this database only)
# Firestore's IAM cannot be narrowed to a collection: the conditions below limit each grant to the
# spokesync database. The public webhook only reads (a channel, its spoke): it gets the read-only role.

locals {
  firestore_writers = { for k, v in local.functions : k => v if k != "push_webhook" }
}

resource "google_project_iam_member" "firestore_user" {
  for_each = local.firestore_writers

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.function[each.key].member

  condition {
    title       = "spokesync database only"
    description = "Firestore access limited to the spokesync database"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.this.name}\""
  }
}

resource "google_project_iam_member" "webhook_reads_firestore" {
  project = var.project_id
  role    = "roles/datastore.viewer"
  member  = google_service_account.function["push_webhook"].member

  condition {
    title       = "spokesync database only, read"
    description = "The push webhook reads channels and spokes of the spokesync database, nothing else"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.this.name}\""
  }
}

# --- function accounts: enqueue sync tasks
# setup ("Sync now"), push_webhook (a push), scheduler (due polls) and sync_spoke (its own
# continuation) all create tasks. The queue routes every task to sync_spoke and adds the invoker's
# OIDC token itself (tasks.tf): no function has actAs on the invoker account, so none can mint an
# invoker token for another URL or audience.

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.functions

  project  = var.project_id
  location = google_cloud_tasks_queue.sync.location
  name     = google_cloud_tasks_queue.sync.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.function[each.key].member
}
