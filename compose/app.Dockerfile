# Stage `base`: what a base image team ships: vinit as the ENTRYPOINT.
FROM scratch AS base
COPY bin/vinit /sbin/vinit
ENTRYPOINT ["/sbin/vinit", "--"]

# The app image extends the base: its binary, its vinit config (a template
# rendered to /run/secrets, a tmpfs in compose.yaml), and its command.
FROM base AS app
COPY bin/vinit-demo-app /app/demo-app
COPY vinit.toml /etc/vinit/vinit.toml
ENV VINIT_CONFIG=/etc/vinit/vinit.toml
CMD ["/app/demo-app", "--env", "DB_PASSWORD", "--env", "API_KEY", "--file", "/run/secrets/app.yaml"]
