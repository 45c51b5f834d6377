/**
 * Optional Serverless VPC Access connector, for an on-premises Exchange
 * server reached over VPN or Interconnect. Only setup (testing credentials,
 * browsing folders) and sync_spoke (runs) talk to Exchange; with
 * PRIVATE_RANGES_ONLY egress their calls to Google APIs stay direct.
 */

locals {
  create_vpc_connector = try(var.exchange.vpc_connector.network, null) != null
  vpc_connector_id = (
    var.exchange.vpc_connector == null ? null :
    local.create_vpc_connector ? google_vpc_access_connector.exchange[0].id :
    var.exchange.vpc_connector.connector_id
  )
  vpc_functions = var.exchange.vpc_connector == null ? [] : ["setup", "sync_spoke"]
}

resource "google_vpc_access_connector" "exchange" {
  count = local.create_vpc_connector ? 1 : 0

  project       = var.project_id
  region        = var.region
  name          = "${var.name_prefix}-exch"
  network       = var.exchange.vpc_connector.network
  ip_cidr_range = var.exchange.vpc_connector.ip_cidr_range
  machine_type  = var.exchange.vpc_connector.machine_type
  min_instances = var.exchange.vpc_connector.min_instances
  max_instances = var.exchange.vpc_connector.max_instances

  depends_on = [google_project_service.api]
}
