#!/usr/bin/env bash
# Back up a Hearth homeserver into DEST/hearth-YYYYmmdd-HHMMSS/ (DEST defaults to ./backups).
#
#   infra/backup.sh [DEST]
#
# HEARTH_DATABASE_URL set (PostgreSQL): pg_dump in custom format (db.dump) plus a tar of the
#   media/ and keys/ folders of HEARTH_DATA_DIR (data.tar.gz). The server may keep running.
# HEARTH_DATABASE_URL unset (embedded PGlite): a tar of the whole HEARTH_DATA_DIR. The server
#   must be stopped: refuses while $HEARTH_DATA_DIR/homeserver.pid names a live process.
# HEARTH_DATA_DIR defaults to <repo>/.data, as in scripts/start.
# docker-compose deployment: docker compose run --rm --no-deps homeserver bash infra/backup.sh /backups
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && usage
(($# <= 1)) || usage 2
die() { echo "backup: $*" >&2; exit 1; }
umask 077 # backups hold the signing keys and every message

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${HEARTH_DATA_DIR:-$ROOT/.data}
DEST_ROOT=${1:-./backups}
[[ -d $DATA_DIR ]] || die "data folder $DATA_DIR does not exist (set HEARTH_DATA_DIR)"

# Work in a .partial folder, renamed only when complete: an interrupted backup is never
# mistaken for a good one.
OUT=$DEST_ROOT/hearth-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$DEST_ROOT"
mkdir "$OUT.partial" || die "$OUT.partial already exists"
trap 'rm -rf "$OUT.partial"' ERR INT TERM

if [[ -n ${HEARTH_DATABASE_URL:-} ]]; then
  kind=postgres
  echo "dumping PostgreSQL ..."
  pg_dump --format=custom --file="$OUT.partial/db.dump" "$HEARTH_DATABASE_URL"
  items=()
  for d in media keys; do [[ -e $DATA_DIR/$d ]] && items+=("$d"); done
  if ((${#items[@]})); then
    echo "archiving ${items[*]} from $DATA_DIR ..."
    tar -C "$DATA_DIR" -czf "$OUT.partial/data.tar.gz" "${items[@]}"
  fi
else
  kind=embedded
  # PGlite files copied while the server writes them would be inconsistent.
  pidfile=$DATA_DIR/homeserver.pid
  if [[ -f $pidfile ]]; then
    pid=$(tr -dc 0-9 <"$pidfile")
    if [[ -n $pid ]] && { kill -0 "$pid" 2>/dev/null || [[ -d /proc/$pid ]]; }; then
      die "the homeserver (pid $pid) is running on $DATA_DIR; stop it first"
    fi
  fi
  echo "archiving $DATA_DIR (embedded database) ..."
  tar -C "$DATA_DIR" --exclude=./homeserver.pid -czf "$OUT.partial/data.tar.gz" .
fi

{
  echo "kind=$kind"
  echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "data_dir=$DATA_DIR"
} >"$OUT.partial/manifest"
(cd "$OUT.partial" && sha256sum -- * >SHA256SUMS)
mv "$OUT.partial" "$OUT"
echo "backup written to $OUT"
