# Hearth homeserver image. Build context: the repository root (see docker-compose.yml).
#   docker build -f infra/homeserver.Dockerfile -t hearth-homeserver .
FROM node:20-bookworm-slim

# postgresql-client: pg_dump/pg_restore for infra/backup.sh and infra/restore.sh,
# run with `docker compose run --rm homeserver bash infra/backup.sh /backups`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# The whole tree (minus .dockerignore) so npm ci sees every workspace's package.json.
COPY . .
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && mkdir -p /data /backups \
 && chown node:node /data /backups

USER node
ENV HEARTH_DATA_DIR=/data \
    HEARTH_BIND_HOST=0.0.0.0 \
    HEARTH_PORT=8008
EXPOSE 8008
VOLUME ["/data"]

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8008/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

CMD ["npm", "run", "--silent", "homeserver"]
