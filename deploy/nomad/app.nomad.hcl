# An app built on the bakery's base image (images/debian), run by vinit as
# PID 1 under Nomad's docker driver: Vault's jwt auth method with the task's
# workload identity (a JWT file Nomad renews; vinit re-reads it at every
# login), secrets rendered to a tmpfs, no root, read-only root filesystem.
# The vinit settings are the ones the Docker and Swarm tests exercise;
# README.md "Orchestrators" gives the rule for kill_timeout and check_restart.
job "app" {
  type = "service"

  group "app" {
    count = 20

    update {
      max_parallel     = 5
      min_healthy_time = "5s"
      # > VINIT_TIMEOUT: a Vault outage during a deploy is not a failed one.
      healthy_deadline = "3m"
    }

    network {
      port "http" { to = 8080 }
    }

    service {
      name     = "app"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          # Checks do not count until VINIT_TIMEOUT (60s) has passed: vinit
          # may be waiting for Vault, and the app has not started yet.
          grace = "70s"
        }
      }
    }

    task "app" {
      driver = "docker"

      # SIGTERM reaches vinit, which forwards it to the app; then vinit gives
      # leftovers VINIT_GRACE (5s) and revokes its token (2s at most).
      # kill_timeout must exceed app shutdown + 5s + 2s.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      # Workload identity for Vault: written to secrets/nomad_vault_default.jwt
      # (the task's secrets/ directory is in memory) and renewed by Nomad.
      identity {
        name        = "vault_default"
        aud         = ["vault.io"]
        file        = true
        ttl         = "1h"
        change_mode = "noop"
      }

      config {
        image     = "registry.example/team/app:1.0" # FROM vinit/debian:bookworm
        # ENTRYPOINT ["/sbin/vinit", "--"] comes from the image: set `args`,
        # never `entrypoint`.
        args      = ["/app/server", "--port", "8080"]
        ports     = ["http"]
        readonly_rootfs = true
        cap_drop  = ["all"]
        security_opt = ["no-new-privileges"]

        # tmpfs: vinit refuses to render secrets to a disk (exit 73).
        mount {
          type     = "tmpfs"
          target   = "/run/vinit"
          readonly = false
          tmpfs_options { size = 1048576 }
        }
      }

      user = "10001"

      env {
        VAULT_ADDR        = "https://vault.service.consul:8200"
        VINIT_AUTH_METHOD = "jwt"
        VINIT_AUTH_MOUNT  = "jwt-nomad"
        VINIT_ROLE        = "app"
        VINIT_JWT_FILE    = "/secrets/nomad_vault_default.jwt"
        VINIT_CONFIG      = "/local/vinit.toml"
        VINIT_TIMEOUT     = "60s"
        VINIT_GRACE       = "5s"
        DB_PASSWORD       = "vault:secret/data/app#password"
      }

      # vinit's config (references only, no secret). Other delimiters: vinit's
      # Jinja uses {{ }} and TOML uses [[ ]].
      template {
        destination = "local/vinit.toml"
        left_delimiter  = "((("
        right_delimiter = ")))"
        data        = <<-EOT
          [[template]]
          contents = "password={{ secret(\"secret/data/app\").password }}\n"
          destination = "/run/vinit/app.conf"
          on_change = "SIGHUP"
        EOT
      }
    }
  }
}
