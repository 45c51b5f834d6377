# --- where

variable "project_id" {
  description = "Google Cloud project to deploy into (its billing must be enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id is a project ID (6-30 lowercase letters, digits, hyphens), not a name or number."
  }
}

variable "region" {
  description = "Region for the functions, the task queue and the scheduler jobs."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))
    error_message = "region looks like europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name, so several deployments can share a project."
  type        = string
  default     = "spokesync"

  validation {
    # 20 leaves room for the longest suffix in names limited to 25-30 characters
    # (VPC connector: 25; service account ids: 30).
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix: 3-20 lowercase letters, digits and hyphens, starting with a letter."
  }
}

# --- Firestore

variable "firestore" {
  description = <<-EOT
    The Firestore database (native mode). `location` defaults to the region;
    a multi-region (nam5, eur3) costs more but survives a regional outage.
    Terraform creates the database: if the project already has one with this
    name, import it first (see docs/DEPLOY.md).
  EOT
  type = object({
    database               = optional(string, "(default)")
    location               = optional(string)
    collection_prefix      = optional(string, "")
    delete_protection      = optional(bool, true)
    point_in_time_recovery = optional(bool, true)
  })
  default = {}

  validation {
    condition     = var.firestore.database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore.database))
    error_message = "firestore.database is \"(default)\" or 4-63 lowercase letters, digits and hyphens."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]*$", var.firestore.collection_prefix))
    error_message = "firestore.collection_prefix may hold letters, digits, '_' and '-' only."
  }
}

# --- secrets

variable "secret_prefix" {
  description = <<-EOT
    Prefix of the Secret Manager secrets the application creates at run time
    (one per credential). The functions may touch only secrets whose name
    starts with it.
  EOT
  type        = string
  default     = "spokesync-"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_-]{2,40}$", var.secret_prefix))
    error_message = "secret_prefix: 3-41 letters, digits, '_' or '-', starting with a letter (it must not be empty: an empty prefix would grant every secret in the project)."
  }
}

variable "google_oauth_client_id" {
  description = "OAuth 2.0 client ID (type 'Web application') used to connect Google calendars."
  type        = string

  validation {
    condition     = can(regex("\\.apps\\.googleusercontent\\.com$", var.google_oauth_client_id))
    error_message = "google_oauth_client_id ends with .apps.googleusercontent.com."
  }
}

variable "google_oauth_client_secret" {
  description = <<-EOT
    The OAuth client's secret. Write-only: it goes into a Secret Manager
    version and never into the Terraform state or plan. Needed on the first
    apply and whenever google_oauth_client_secret_version is raised; pass it
    as TF_VAR_google_oauth_client_secret, not in a file.
  EOT
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "google_oauth_client_secret_version" {
  description = "Raise by one to store a new google_oauth_client_secret (rotation)."
  type        = number
  default     = 1

  validation {
    condition     = var.google_oauth_client_secret_version >= 1 && floor(var.google_oauth_client_secret_version) == var.google_oauth_client_secret_version
    error_message = "google_oauth_client_secret_version is a whole number >= 1."
  }
}

# --- access

variable "setup_invokers" {
  description = <<-EOT
    Who may open the setup API and wizard (roles/run.invoker on the setup
    function): IAM members such as "user:admin@example.com" or
    "group:it@example.com". Admins reach it through
    `gcloud run services proxy` (see outputs.setup_proxy_command).
  EOT
  type        = list(string)

  validation {
    condition     = length(var.setup_invokers) > 0 && alltrue([for m in var.setup_invokers : can(regex("^(user|group|serviceAccount|domain):[^\\s]+$", m))])
    error_message = "setup_invokers: at least one member like user:NAME@DOMAIN, group:..., serviceAccount:... or domain:... (never allUsers)."
  }
}

variable "setup_public_url" {
  description = <<-EOT
    Where admins reach setup, used for the OAuth redirect. Empty: the setup
    function's run.app URL. With `gcloud run services proxy` use
    "http://localhost:8080".
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.setup_public_url == "" || can(regex("^(https://[^/\\s]+|http://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?)(/.*)?$", var.setup_public_url))
    error_message = "setup_public_url is empty, an https URL, or http://localhost[:port] (for the proxy)."
  }
}

variable "setup_admin_emails" {
  description = <<-EOT
    Google accounts the setup API accepts (checked by the application after
    Cloud Run's IAM check, and again behind IAP). Required: setup refuses
    everyone while the list is empty; the application never relies on the
    IAM check in front of it alone.
  EOT
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.setup_admin_emails) > 0
    error_message = "setup_admin_emails must list at least one administrator's Google account: setup refuses everyone else."
  }

  validation {
    condition     = alltrue([for e in var.setup_admin_emails : can(regex("^[^@\\s,]+@[^@\\s,]+$", e))])
    error_message = "setup_admin_emails holds plain e-mail addresses (no commas)."
  }
}

variable "setup_iap_audience" {
  description = <<-EOT
    When setup is put behind Identity-Aware Proxy (a load balancer with IAP,
    set up outside this configuration): the audience of IAP's signed header,
    /projects/NUMBER/global/backendServices/ID. Empty: no IAP.
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.setup_iap_audience == "" || can(regex("^/projects/[0-9]+/(global/backendServices/[0-9]+|locations/[a-z0-9-]+/services/[a-z0-9-]+)$", var.setup_iap_audience))
    error_message = "setup_iap_audience looks like /projects/NUMBER/global/backendServices/ID."
  }
}

variable "webhook_url" {
  description = <<-EOT
    Public https address Google Calendar push notifications are sent to.
    Empty: the push_webhook function's run.app URL. Set it when the webhook
    is reached through a custom domain.
  EOT
  type        = string
  default     = ""

  validation {
    condition     = var.webhook_url == "" || can(regex("^https://[^/\\s]+(/.*)?$", var.webhook_url))
    error_message = "webhook_url must be https (Google only delivers push notifications to https addresses)."
  }
}

# --- sync behaviour

variable "sync" {
  description = <<-EOT
    Run and polling settings. run_budget_s: a sync run commits and re-enqueues
    itself after this; it must stay below the sync function's timeout.
    lease_ttl_s: a crashed run's lease expires after this (> run budget).
    poll_interval_s: default polling interval of a spoke. poll_schedule:
    cron of the scheduler tick that enqueues due polls (it should fire at
    least as often as the shortest poll interval). renew_schedule: cron of
    the push-channel renewal. google_backoff_s / google_retry_budget_s: first
    delay and total waiting a run spends on Google rate limits and 5xx.
    quota_retry_s: a spoke paused by a quota error is polled again after this.
    max_response_mb: the largest answer (after decompression) read from
    Exchange, Graph or Google; a bigger one fails the run with an error
    naming the server (a hostile or broken server cannot exhaust memory).
    graph_retry_budget_s: total waiting a run spends on Microsoft Graph's
    Retry-After. graph_sub_ttl_s / graph_sub_renew_before_s: lifetime of a
    Microsoft 365 change-notification subscription (Outlook allows at most
    4230 minutes) and how long before expiry the scheduler renews it.
  EOT
  type = object({
    run_budget_s                  = optional(number, 480)
    lease_ttl_s                   = optional(number, 600)
    poll_interval_s               = optional(number, 300)
    quota_retry_s                 = optional(number, 10800)
    poll_schedule                 = optional(string, "*/5 * * * *")
    renew_schedule                = optional(string, "23 * * * *")
    schedule_time_zone            = optional(string, "Etc/UTC")
    google_channel_ttl_s          = optional(number, 604800)
    google_channel_renew_before_s = optional(number, 86400)
    google_backoff_s              = optional(number, 1)
    google_retry_budget_s         = optional(number, 60)
    max_response_mb               = optional(number, 32)
    graph_retry_budget_s          = optional(number, 60)
    graph_sub_ttl_s               = optional(number, 252000)
    graph_sub_renew_before_s      = optional(number, 43200)
  })
  default = {}

  validation {
    condition     = var.sync.max_response_mb >= 1 && var.sync.max_response_mb <= 256
    error_message = "sync.max_response_mb is between 1 and 256 (the functions have 256-512 MiB of memory)."
  }

  validation {
    condition     = var.sync.run_budget_s >= 30 && var.sync.lease_ttl_s > var.sync.run_budget_s
    error_message = "sync.run_budget_s must be >= 30 and sync.lease_ttl_s greater than it."
  }

  validation {
    condition     = var.sync.poll_interval_s >= 60
    error_message = "sync.poll_interval_s is at least 60 seconds."
  }

  validation {
    condition     = var.sync.google_channel_renew_before_s < var.sync.google_channel_ttl_s
    error_message = "sync.google_channel_renew_before_s must be shorter than sync.google_channel_ttl_s."
  }
}

variable "queue" {
  description = <<-EOT
    Cloud Tasks limits for sync runs. Google Calendar allows 600 requests a
    minute per user and Exchange about 10 concurrent requests per user, and a
    run issues many requests: few concurrent runs keep both far from their
    limits. Retries back off up to max_backoff (quota errors clear slowly);
    the next scheduled poll enqueues the spoke again anyway. coalesce_s:
    sync requests for one spoke within this window share one task.
  EOT
  type = object({
    coalesce_s                = optional(number, 10)
    max_dispatches_per_second = optional(number, 2)
    max_concurrent_dispatches = optional(number, 5)
    max_attempts              = optional(number, 12)
    min_backoff_s             = optional(number, 10)
    max_backoff_s             = optional(number, 900)
    max_doublings             = optional(number, 6)
    max_retry_duration_s      = optional(number, 21600)
    log_sampling_ratio        = optional(number, 0)
  })
  default = {}

  validation {
    condition     = var.queue.max_dispatches_per_second > 0 && var.queue.max_dispatches_per_second <= 500
    error_message = "queue.max_dispatches_per_second is in (0, 500]."
  }

  validation {
    condition     = var.queue.max_concurrent_dispatches >= 1 && var.queue.max_concurrent_dispatches <= 1000
    error_message = "queue.max_concurrent_dispatches is in [1, 1000]."
  }

  validation {
    condition     = var.queue.min_backoff_s <= var.queue.max_backoff_s && var.queue.log_sampling_ratio >= 0 && var.queue.log_sampling_ratio <= 1
    error_message = "queue.min_backoff_s <= queue.max_backoff_s, and 0 <= queue.log_sampling_ratio <= 1."
  }
}

# --- functions

variable "functions" {
  description = <<-EOT
    Sizing per function. timeout_s of sync_spoke must exceed
    sync.run_budget_s. min_instances > 0 removes cold starts for a price (an
    idle instance is billed). concurrency > 1 needs cpu >= 1.
  EOT
  type = object({
    setup = optional(object({
      memory        = optional(string, "512Mi")
      cpu           = optional(string)
      timeout_s     = optional(number, 60)
      min_instances = optional(number, 0)
      max_instances = optional(number, 2)
      concurrency   = optional(number, 1)
      ingress       = optional(string, "ALLOW_ALL")
    }), {})
    sync_spoke = optional(object({
      memory        = optional(string, "512Mi")
      cpu           = optional(string)
      timeout_s     = optional(number, 600)
      min_instances = optional(number, 0)
      max_instances = optional(number, 10)
      concurrency   = optional(number, 1)
      ingress       = optional(string, "ALLOW_INTERNAL_ONLY")
    }), {})
    push_webhook = optional(object({
      memory        = optional(string, "256Mi")
      cpu           = optional(string)
      timeout_s     = optional(number, 30)
      min_instances = optional(number, 0)
      max_instances = optional(number, 5)
      concurrency   = optional(number, 1)
      ingress       = optional(string, "ALLOW_ALL")
    }), {})
    scheduler = optional(object({
      memory        = optional(string, "256Mi")
      cpu           = optional(string)
      timeout_s     = optional(number, 300)
      min_instances = optional(number, 0)
      max_instances = optional(number, 1)
      concurrency   = optional(number, 1)
      ingress       = optional(string, "ALLOW_INTERNAL_ONLY")
    }), {})
  })
  default = {}

  validation {
    condition = alltrue([
      for f in var.functions :
      f.timeout_s >= 1 && f.timeout_s <= 3600 && f.min_instances >= 0 && f.max_instances >= max(1, f.min_instances) && f.concurrency >= 1
    ])
    error_message = "Each function: 1 <= timeout_s <= 3600, 0 <= min_instances <= max_instances (>= 1), concurrency >= 1."
  }

  validation {
    condition     = alltrue([for f in var.functions : contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], f.ingress)])
    error_message = "ingress is ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }

  # Cloud Tasks and Cloud Scheduler in the same project reach a service whose ingress is "internal" at its
  # run.app URL (Cloud Run, "Restrict network ingress": https://cloud.google.com/run/docs/securing/ingress),
  # and they are the only callers of these two: nothing on the internet needs to reach them.
  validation {
    condition     = var.functions.sync_spoke.ingress != "ALLOW_ALL" && var.functions.scheduler.ingress != "ALLOW_ALL"
    error_message = "sync_spoke and scheduler are reached only by Cloud Tasks and Cloud Scheduler: keep them internal (ALLOW_INTERNAL_ONLY)."
  }

  validation {
    condition     = var.functions.push_webhook.ingress == "ALLOW_ALL"
    error_message = "push_webhook must accept traffic from the internet: Google's push notifications come from outside the project."
  }

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|M|G)$", var.functions.setup.memory)) && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.functions.sync_spoke.memory)) && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.functions.push_webhook.memory)) && can(regex("^[0-9]+(Mi|Gi|M|G)$", var.functions.scheduler.memory))
    error_message = "memory is like 256Mi or 1Gi."
  }
}

variable "runtime" {
  description = "Python runtime of the functions (the code is tested on 3.11)."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]{2}$", var.runtime))
    error_message = "runtime is python311, python312, ..."
  }
}

# --- Exchange on premises

variable "exchange" {
  description = <<-EOT
    Reaching Exchange servers. allowed_cidrs: private networks the
    application may connect to (its SSRF guard rejects non-global addresses
    otherwise), e.g. ["10.20.0.0/16"]. allowed_ports: ports a public EWS or
    token URL may use besides 443, e.g. [8443]. allow_http: permit http:// EWS URLs
    (only inside a private network). vpc_connector: route the setup and sync
    functions' private-range traffic through a Serverless VPC Access
    connector, either an existing one (connector_id) or a new one (network +
    ip_cidr_range, an unused /28) — for an on-premises server reached over
    VPN or Interconnect.
  EOT
  type = object({
    allowed_cidrs = optional(list(string), [])
    allowed_ports = optional(list(number), [])
    allow_http    = optional(bool, false)
    vpc_connector = optional(object({
      connector_id  = optional(string)
      network       = optional(string)
      ip_cidr_range = optional(string)
      min_instances = optional(number, 2)
      max_instances = optional(number, 3)
      machine_type  = optional(string, "e2-micro")
      egress        = optional(string, "PRIVATE_RANGES_ONLY")
    }))
  })
  default = {}

  validation {
    condition     = alltrue([for c in var.exchange.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "exchange.allowed_cidrs holds CIDR blocks like 10.20.0.0/16."
  }

  validation {
    condition = var.exchange.vpc_connector == null ? true : (
      (try(var.exchange.vpc_connector.connector_id, null) != null) != (try(var.exchange.vpc_connector.network, null) != null)
      && (try(var.exchange.vpc_connector.network, null) == null || can(cidrhost(var.exchange.vpc_connector.ip_cidr_range, 0)))
    )
    error_message = "exchange.vpc_connector: give either connector_id (an existing connector) or network + ip_cidr_range (a new one), not both."
  }

  validation {
    condition     = var.exchange.vpc_connector == null ? true : contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], var.exchange.vpc_connector.egress)
    error_message = "exchange.vpc_connector.egress is PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

variable "labels" {
  description = "Extra labels on the resources that take labels."
  type        = map(string)
  default     = {}
}
