/**
 * The hub store: one Firestore database in native mode and the composite
 * indexes its queries need. local.firestore_indexes mirrors
 * shared/spokesync/stores/firestore_indexes.py; tests/infra fails when the
 * two differ.
 */

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = var.firestore.database
  location_id                       = coalesce(var.firestore.location, var.region)
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.firestore.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.firestore.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # `terraform destroy` leaves the hub data in place unless it is deleted by hand.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.api]
}

locals {
  # Composite indexes, one entry per shared/spokesync/stores/firestore_indexes.py entry.
  # fields: field_path with order (ASCENDING/DESCENDING) or array_config (CONTAINS).
  firestore_indexes = []
}

resource "google_firestore_index" "this" {
  for_each = {
    for ix in local.firestore_indexes :
    "${ix.collection}:${join(",", [for f in ix.fields : "${f.field_path}:${try(f.order, f.array_config)}"])}" => ix
  }

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = "${var.firestore.collection_prefix}${each.value.collection}"
  query_scope = try(each.value.query_scope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.field_path
      order        = try(fields.value.order, null)
      array_config = try(fields.value.array_config, null)
    }
  }
}
