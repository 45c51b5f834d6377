/**
 * Cloud Tasks queue for sync runs and the Cloud Scheduler jobs that drive
 * polling and push-channel renewal. Both call the private functions with an
 * OIDC token of the invoker service account; the audience is the target's
 * run.app URL (which Cloud Run accepts), and the code checks audience and
 * account again (SPOKESYNC_OIDC_AUDIENCE, SPOKESYNC_TASKS_SERVICE_ACCOUNT).
 *
 * The queue routes every task itself (queue-level routing, "Configure queue
 * routing, limits, and retries", https://cloud.google.com/tasks/docs/configuring-queues):
 * `uri_override` with enforce mode ALWAYS sends every task to sync_spoke
 * whatever URL its creator wrote, and the queue-level `oidc_token` adds the
 * invoker's token ("Configuring authentication at the queue level overrides
 * task-level authentication"). The functions create tasks without a token
 * (SPOKESYNC_TASKS_QUEUE_AUTH), so none of them needs actAs on the invoker
 * account: a compromised function (the public webhook above all) cannot mint
 * an invoker token for another URL or audience, only queue syncs.
 * Limitation (Google's docs): queue-level routing cannot be combined with
 * customer-managed encryption keys (CMEK) on Cloud Tasks.
 */

resource "google_cloud_tasks_queue" "sync" {
  project  = var.project_id
  name     = "${var.name_prefix}-sync"
  location = var.region

  rate_limits {
    max_dispatches_per_second = var.queue.max_dispatches_per_second
    max_concurrent_dispatches = var.queue.max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = var.queue.max_attempts
    min_backoff        = "${var.queue.min_backoff_s}s"
    max_backoff        = "${var.queue.max_backoff_s}s"
    max_doublings      = var.queue.max_doublings
    max_retry_duration = "${var.queue.max_retry_duration_s}s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.queue.log_sampling_ratio
  }

  http_target {
    http_method = "POST"
    uri_override {
      scheme = "HTTPS"
      host   = local.sync_host
      path_override {
        path = "/"
      }
      uri_override_enforce_mode = "ALWAYS"
    }
    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.function_urls.sync_spoke
    }
  }

  depends_on = [google_project_service.api]
}

locals {
  # Scheduler jobs: what the scheduler entry point is asked to do, and when.
  scheduler_jobs = {
    poll = {
      description = "Enqueue a sync task for every spoke whose poll is due"
      schedule    = var.sync.poll_schedule
      body        = { job = "poll" }
    }
    renew_channels = {
      description = "Renew Google push channels and Microsoft 365 subscriptions that expire soon"
      schedule    = var.sync.renew_schedule
      body        = { job = "renew_channels" }
    }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.scheduler_jobs

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = var.sync.schedule_time_zone
  attempt_deadline = "${min(var.functions.scheduler.timeout_s, 1800)}s"

  # The next tick comes soon anyway; one retry covers a cold-start hiccup.
  retry_config {
    retry_count          = 1
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = local.function_urls.scheduler
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(each.value.body))

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.function_urls.scheduler
    }
  }

  depends_on = [
    google_project_service.api,
    google_cloud_run_v2_service_iam_member.invoker,
  ]
}
