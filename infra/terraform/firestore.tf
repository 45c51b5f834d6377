/**
 * The hub store: one Firestore database in native mode and the composite
 * indexes its queries need. local.firestore_indexes and
 * local.firestore_field_overrides mirror shared/spokesync/stores/firestore_indexes.py;
 * tests/infra fails when they differ.
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
  # Mirrors COMPOSITE_INDEXES in shared/spokesync/stores/firestore_indexes.py
  # (tests/infra compares the two). `prefixed`: a top-level collection, whose
  # id gets the deployment's collection prefix; subcollections keep their id.
  # fields: field_path with order (ASCENDING/DESCENDING) or array_config (CONTAINS).
  firestore_indexes = [
    {
      collection  = "runs"
      prefixed    = true
      query_scope = "COLLECTION"
      fields = [
        { field_path = "spoke_id", order = "ASCENDING" },
        { field_path = "started_at", order = "DESCENDING" },
      ]
    },
    {
      collection  = "runs"
      prefixed    = true
      query_scope = "COLLECTION"
      fields = [
        { field_path = "hub_id", order = "ASCENDING" },
        { field_path = "started_at", order = "DESCENDING" },
      ]
    },
    # origin links in the hub item: by spoke item id, and counted without the detached ones
    {
      collection  = "items"
      prefixed    = false
      query_scope = "COLLECTION"
      fields = [
        { field_path = "link_home", order = "ASCENDING" },
        { field_path = "link.spoke_item_id", order = "ASCENDING" },
      ]
    },
    {
      collection  = "items"
      prefixed    = false
      query_scope = "COLLECTION"
      fields = [
        { field_path = "link_home", order = "ASCENDING" },
        { field_path = "link.detached", order = "ASCENDING" },
      ]
    },
  ]

  # Mirrors FIELD_OVERRIDES: single-field index exemptions for large values no
  # query filters on (cheaper and faster writes, and no 1500-byte index-entry
  # limit on them).
  firestore_field_overrides = [
    { collection = "items", prefixed = false, field = "event" },
    { collection = "cursor", prefixed = false, field = "data" },
    { collection = "spokes", prefixed = true, field = "cursor" },
    { collection = "spokes", prefixed = true, field = "options" },
    { collection = "spokes", prefixed = true, field = "address" },
    { collection = "runs", prefixed = true, field = "plan" },
    { collection = "runs", prefixed = true, field = "conflicts" },
  ]
}

resource "google_firestore_index" "this" {
  for_each = {
    for ix in local.firestore_indexes :
    "${ix.collection}:${join(",", [for f in ix.fields : "${f.field_path}:${try(f.order, f.array_config)}"])}" => ix
  }

  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = each.value.prefixed ? "${var.firestore.collection_prefix}${each.value.collection}" : each.value.collection
  query_scope = each.value.query_scope

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.field_path
      order        = try(fields.value.order, null)
      array_config = try(fields.value.array_config, null)
    }
  }
}

resource "google_firestore_field" "no_index" {
  for_each = { for o in local.firestore_field_overrides : "${o.collection}.${o.field}" => o }

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value.prefixed ? "${var.firestore.collection_prefix}${each.value.collection}" : each.value.collection
  field      = each.value.field

  # An empty index_config removes the automatic single-field indexes.
  index_config {}
}
