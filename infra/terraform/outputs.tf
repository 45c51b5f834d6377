output "setup_url" {
  description = "The setup API and wizard (private: open it through setup_proxy_command)."
  value       = local.function_urls.setup
}

output "setup_proxy_command" {
  description = "Opens setup on http://localhost:8080 with your Google identity."
  value       = "gcloud run services proxy ${module.function["setup"].name} --project ${var.project_id} --region ${var.region} --port 8080"
}

output "webhook_url" {
  description = "Where Google Calendar push notifications are delivered (must be https and public)."
  value       = local.webhook_url
}

output "sync_url" {
  description = "The sync_spoke function (Cloud Tasks target)."
  value       = local.function_urls.sync_spoke
}

output "scheduler_url" {
  description = "The scheduler entry point (Cloud Scheduler target)."
  value       = local.function_urls.scheduler
}

output "oauth_redirect_base" {
  description = "Base URL of the OAuth redirect: register its callback path on the OAuth client (see docs/DEPLOY.md)."
  value       = local.setup_public_url
}

output "function_uris" {
  description = "run.app URIs Cloud Run reports for each function (the hashed form; the deterministic ones above work too)."
  value       = { for k, m in module.function : k => m.uri }
}

output "tasks_queue" {
  description = "Cloud Tasks queue of sync runs."
  value       = google_cloud_tasks_queue.sync.id
}

output "service_accounts" {
  description = "Service accounts: one per function, the OIDC invoker, the builder."
  value = merge(
    { for k, sa in google_service_account.function : k => sa.email },
    { invoker = google_service_account.invoker.email, build = google_service_account.build.email },
  )
}

output "firestore_database" {
  description = "The Firestore database holding the hub."
  value       = google_firestore_database.this.name
}
