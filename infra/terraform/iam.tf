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

resource "google_project_iam_member" "firestore_user" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.function[each.key].member

  condition {
    title       = "spokesync database only"
    description = "Firestore access limited to the spokesync database"
    expression  = "resource.name == \"projects/${var.project_id}/databases/${google_firestore_database.this.name}\""
  }
}

# --- function accounts: enqueue sync tasks that carry the invoker's OIDC token
# setup ("Sync now"), push_webhook (a push), scheduler (due polls) and
# sync_spoke (its own continuation) all create tasks.

resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.functions

  project  = var.project_id
  location = google_cloud_tasks_queue.sync.location
  name     = google_cloud_tasks_queue.sync.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.function[each.key].member
}

# Creating a task with an OIDC token of the invoker account needs actAs on it.
resource "google_service_account_iam_member" "acts_as_invoker" {
  for_each = local.functions

  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.function[each.key].member
}
