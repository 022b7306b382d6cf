#!/usr/bin/env bash
# Deploy or update the docker-compose stack, then wait until the homeserver is healthy.
#
#   infra/deploy.sh [--timeout SECONDS]       (default 180)
#
# Pulls the service images, rebuilds the homeserver image, `docker compose up -d`, then polls
# HEALTH_URL (default http://127.0.0.1:8008/health) until it answers 200 or the timeout passes.
# Needs Docker with the compose plugin, curl, and a .env next to docker-compose.yml
# (start from .env.example).
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }
die() { echo "deploy: $*" >&2; exit 1; }
TIMEOUT=180
while (($#)); do
  case $1 in
    -h | --help) usage ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    *) usage 2 ;;
  esac
done
HEALTH_URL=${HEALTH_URL:-http://127.0.0.1:8008/health}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -f .env ]] || die "no .env: cp .env.example .env and fill it in"
docker compose version >/dev/null 2>&1 || die "docker compose (the Docker CLI plugin) is required"
command -v curl >/dev/null || die "curl is required"

echo "==== pull ===="
docker compose pull --ignore-buildable
echo "==== build ===="
docker compose build --pull homeserver
echo "==== up ===="
docker compose up -d --remove-orphans

echo "==== waiting for $HEALTH_URL (up to ${TIMEOUT}s) ===="
deadline=$((SECONDS + TIMEOUT))
until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$HEALTH_URL" || true) == 200 ]]; do
  if ((SECONDS >= deadline)); then
    docker compose ps
    docker compose logs --tail 50 homeserver
    die "the homeserver was not healthy after ${TIMEOUT}s"
  fi
  sleep 2
done
echo "healthy: $HEALTH_URL"
