/**
 * One HTTP Cloud Function (gen2) built from a zip that terraform assembles:
 * the function's own directory at the zip root, the shared Python package
 * beside it and the requirements file. The object name carries the zip's
 * hash, so a code change uploads a new object and redeploys the function.
 */

locals {
  function_files = {
    for f in fileset(var.code.function_dir, "**") :
    f => "${var.code.function_dir}/${f}"
    if !anytrue([for part in split("/", f) : part == "__pycache__" || startswith(part, ".")]) && !endswith(f, ".pyc")
  }
  package_files = {
    for f in fileset(var.code.package_dir, "**") :
    "${var.code.package_name}/${f}" => "${var.code.package_dir}/${f}"
    if !anytrue([for part in split("/", f) : part == "__pycache__" || startswith(part, ".")]) && !endswith(f, ".pyc")
  }
  zip_files = merge(local.function_files, local.package_files, {
    "requirements.txt" = var.code.requirements_file
  })
}

data "archive_file" "source" {
  type             = "zip"
  output_path      = "${var.code.build_dir}/${var.name}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = local.zip_files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket_object" "source" {
  bucket = var.source_bucket
  name   = "${var.name}/${data.archive_file.source.output_md5}.zip"
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = var.description
  labels      = var.labels

  build_config {
    runtime           = var.runtime
    entry_point       = var.entry_point
    service_account   = var.build_service_account
    docker_repository = var.docker_repository

    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_email
    available_memory                 = var.settings.memory
    available_cpu                    = var.settings.cpu
    timeout_seconds                  = var.settings.timeout_s
    min_instance_count               = var.settings.min_instances
    max_instance_count               = var.settings.max_instances
    max_instance_request_concurrency = var.settings.concurrency
    ingress_settings                 = var.settings.ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = var.environment

    vpc_connector                 = var.vpc_connector
    vpc_connector_egress_settings = var.vpc_connector == null ? null : var.vpc_connector_egress

    dynamic "secret_environment_variables" {
      for_each = var.secret_environment
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }
}
