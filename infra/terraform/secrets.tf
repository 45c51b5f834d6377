/**
 * Secret Manager. The application creates one secret per credential at run
 * time, named var.secret_prefix + something. IAM cannot limit *creating* a
 * secret by name (secrets.create is checked on the project), so the grant is
 * split in two:
 *  - setup alone may create secrets (a custom role holding only
 *    secretmanager.secrets.create): it can add names to the project but not
 *    read, change or delete any secret through that role;
 *  - everything else (read, add/disable/destroy versions, delete) is granted
 *    through conditions on the resource name: only secrets and versions
 *    under projects/NUMBER/secrets/<prefix>.
 * The OAuth client secret is managed here, outside the prefix, so the
 * application cannot delete or overwrite it.
 * See docs/decisions/2026-11-23-infra-secret-manager-access.md.
 */

locals {
  google_oauth_client_secret_id = "${var.name_prefix}_google-oauth-client-secret"

  secret_name_condition = join(" && ", [
    "(resource.type == \"secretmanager.googleapis.com/Secret\" || resource.type == \"secretmanager.googleapis.com/SecretVersion\")",
    "resource.name.startsWith(\"projects/${local.project_number}/secrets/${var.secret_prefix}\")",
  ])

  # Which function may do what with the application's secrets.
  #   manage: setup stores, replaces, tests and deletes credentials.
  #   read:   runs and channel renewal only read them (secretAccessor).
  # push_webhook gets none: it checks channel tokens against hashes in Firestore.
  secret_access = {
    setup      = "manage"
    sync_spoke = "read"
    scheduler  = "read"
  }
}

resource "google_project_iam_custom_role" "secret_creator" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_secret_creator"
  title       = "spokesync secret creator"
  description = "Create Secret Manager secrets (names are limited by the application; access by a separate, conditional grant)"
  permissions = ["secretmanager.secrets.create"]
}

# Exactly the calls spokesync/secrets/secret_manager.py makes besides
# create_secret: add_secret_version, access_secret_version,
# list_secret_versions + destroy_secret_version (old versions), delete_secret.
resource "google_project_iam_custom_role" "secret_manager" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_secret_manager"
  title       = "spokesync credential secrets manager"
  description = "Store, read and delete credential secrets; granted only with a condition on the secret name prefix"
  permissions = [
    "secretmanager.secrets.delete",
    "secretmanager.versions.add",
    "secretmanager.versions.access",
    "secretmanager.versions.list",
    "secretmanager.versions.destroy",
  ]
}

resource "google_project_iam_member" "secret_creator" {
  for_each = { for k, v in local.secret_access : k => v if v == "manage" }

  project = var.project_id
  role    = google_project_iam_custom_role.secret_creator.id
  member  = google_service_account.function[each.key].member
}

resource "google_project_iam_member" "secret_access" {
  for_each = local.secret_access

  project = var.project_id
  role    = each.value == "manage" ? google_project_iam_custom_role.secret_manager.id : "roles/secretmanager.secretAccessor"
  member  = google_service_account.function[each.key].member

  condition {
    title       = "spokesync secrets only"
    description = "Secrets whose id starts with ${var.secret_prefix}"
    expression  = local.secret_name_condition
  }
}

# --- the Google OAuth client secret, given to functions as a secret env var

resource "google_secret_manager_secret" "google_oauth_client_secret" {
  project   = var.project_id
  secret_id = local.google_oauth_client_secret_id
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_version" "google_oauth_client_secret" {
  secret = google_secret_manager_secret.google_oauth_client_secret.id

  # Write-only: the value is sent to Secret Manager and kept out of the state.
  secret_data_wo         = var.google_oauth_client_secret
  secret_data_wo_version = var.google_oauth_client_secret_version
}

resource "google_secret_manager_secret_iam_member" "google_oauth_client_secret" {
  for_each = toset([for k, f in local.functions : k if contains(f.secrets, "SPOKESYNC_GOOGLE_CLIENT_SECRET")])

  project   = var.project_id
  secret_id = google_secret_manager_secret.google_oauth_client_secret.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.key].member
}
