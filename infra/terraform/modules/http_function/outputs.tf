output "name" {
  description = "Function name (= Cloud Run service name)."
  value       = google_cloudfunctions2_function.this.name
}

output "uri" {
  description = "The run.app URI Cloud Run reports for the function's service."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "zip_md5" {
  description = "Hash of the deployed source zip."
  value       = data.archive_file.source.output_md5
}
