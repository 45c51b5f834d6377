variable "project_id" {
  description = "Project the function is deployed in."
  type        = string
}

variable "region" {
  description = "Region of the function (and of its Cloud Run service)."
  type        = string
}

variable "name" {
  description = "Function name; also the name of the underlying Cloud Run service."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,48}[a-z0-9]$", var.name))
    error_message = "A gen2 function name is lowercase letters, digits and hyphens, at most 50 characters."
  }
}

variable "description" {
  description = "Shown in the console."
  type        = string
  default     = ""
}

variable "runtime" {
  description = "Python runtime, e.g. python311."
  type        = string
}

variable "entry_point" {
  description = "Name of the Python function in main.py that serves requests."
  type        = string
}

variable "code" {
  description = <<-EOT
    What goes into the deploy zip: every file of function_dir at the zip root
    (main.py ...), every file of package_dir under package_name/, and
    requirements_file as requirements.txt. __pycache__, *.pyc and dotfiles
    are left out. Files are read with file(): they must be UTF-8 text.
  EOT
  type = object({
    function_dir      = string
    package_dir       = string
    package_name      = string
    requirements_file = string
    build_dir         = string
  })
}

variable "source_bucket" {
  description = "Bucket the zip is uploaded to."
  type        = string
}

variable "build_service_account" {
  description = "Full resource name (projects/P/serviceAccounts/EMAIL) of the Cloud Build service account."
  type        = string
}

variable "docker_repository" {
  description = "Artifact Registry repository for the built image (projects/P/locations/L/repositories/R)."
  type        = string
}

variable "service_account_email" {
  description = "Identity the function runs as."
  type        = string
}

variable "settings" {
  description = "Sizing and scaling."
  type = object({
    memory        = string
    cpu           = optional(string)
    timeout_s     = number
    min_instances = number
    max_instances = number
    concurrency   = optional(number, 1)
    ingress       = optional(string, "ALLOW_ALL")
  })
}

variable "environment" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "secret_environment" {
  description = "Environment variables read from Secret Manager: name -> {secret id, version}."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector id, or null for none."
  type        = string
  default     = null
}

variable "vpc_connector_egress" {
  description = "PRIVATE_RANGES_ONLY or ALL_TRAFFIC; used only with a connector."
  type        = string
  default     = "PRIVATE_RANGES_ONLY"
}

variable "labels" {
  description = "Labels on the function."
  type        = map(string)
  default     = {}
}
