#!/usr/bin/env bash
# Restore a backup made by infra/backup.sh (the inverse of it).
#
#   infra/restore.sh [--force] BACKUP_FOLDER
#
# kind=postgres: pg_restore db.dump into HEARTH_DATABASE_URL, then unpack media/ and keys/ into
#   HEARTH_DATA_DIR. kind=embedded: unpack the whole data folder into HEARTH_DATA_DIR (the
#   homeserver must be stopped).
# Refuses when the target database has tables or a target folder is not empty, unless --force,
# which replaces them: database objects in the dump are dropped and recreated, and the
# folders restored are emptied first.
# HEARTH_DATA_DIR defaults to <repo>/.data, as in scripts/start.
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit "${1:-0}"; }
die() { echo "restore: $*" >&2; exit 1; }
FORCE=''
BACKUP=''
for a in "$@"; do
  case $a in
    -h | --help) usage ;;
    --force) FORCE=1 ;;
    -*) usage 2 ;;
    *) [[ -z $BACKUP ]] || usage 2; BACKUP=$a ;;
  esac
done
[[ -n $BACKUP ]] || usage 2
[[ -f $BACKUP/manifest ]] || die "$BACKUP has no manifest: not a backup folder"
(cd "$BACKUP" && sha256sum --quiet -c SHA256SUMS) || die "$BACKUP is damaged (checksum mismatch)"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA_DIR=${HEARTH_DATA_DIR:-$ROOT/.data}
kind=$(sed -n 's/^kind=//p' "$BACKUP/manifest")
non_empty() { [[ -d $1 && -n $(ls -A "$1") ]]; }

# ---- every check first, so a refusal leaves everything untouched ----
case $kind in
  postgres)
    [[ -n ${HEARTH_DATABASE_URL:-} ]] || die "kind=postgres: set HEARTH_DATABASE_URL to the target database"
    tables=$(psql "$HEARTH_DATABASE_URL" -Atqc "select count(*) from pg_class c join pg_namespace n
      on n.oid = c.relnamespace where c.relkind in ('r','p')
      and n.nspname not in ('pg_catalog','information_schema') and n.nspname not like 'pg_toast%'")
    if ((tables > 0)) && [[ -z $FORCE ]]; then
      die "the target database has $tables tables; use --force to replace them"
    fi
    items=()
    if [[ -f $BACKUP/data.tar.gz ]]; then mapfile -t items < <(tar -tzf "$BACKUP/data.tar.gz" | cut -d/ -f1 | sort -u); fi
    for d in "${items[@]}"; do
      if non_empty "$DATA_DIR/$d" && [[ -z $FORCE ]]; then die "$DATA_DIR/$d is not empty; use --force to replace it"; fi
    done
    ;;
  embedded)
    pidfile=$DATA_DIR/homeserver.pid
    if [[ -f $pidfile ]]; then
      pid=$(tr -dc 0-9 <"$pidfile")
      if [[ -n $pid ]] && { kill -0 "$pid" 2>/dev/null || [[ -d /proc/$pid ]]; }; then
        die "the homeserver (pid $pid) is running on $DATA_DIR; stop it first"
      fi
    fi
    if non_empty "$DATA_DIR" && [[ -z $FORCE ]]; then die "$DATA_DIR is not empty; use --force to replace it"; fi
    ;;
  *) die "unknown backup kind '$kind'" ;;
esac

# ---- restore ----
mkdir -p "$DATA_DIR"
if [[ $kind == postgres ]]; then
  echo "restoring the database ..."
  pg_restore --single-transaction --no-owner --no-privileges ${FORCE:+--clean --if-exists} \
    --dbname="$HEARTH_DATABASE_URL" "$BACKUP/db.dump"
  for d in "${items[@]}"; do rm -rf "${DATA_DIR:?}/$d"; done
  if ((${#items[@]})); then
    echo "restoring ${items[*]} into $DATA_DIR ..."
    tar -C "$DATA_DIR" -xzf "$BACKUP/data.tar.gz"
  fi
else
  find "$DATA_DIR" -mindepth 1 -delete
  echo "restoring $DATA_DIR ..."
  tar -C "$DATA_DIR" -xzf "$BACKUP/data.tar.gz"
fi
echo "restored $BACKUP"
