#!/usr/bin/env bash
# Prints a DATABASE_URL for the telemetry API tests.
#
#   DATABASE_URL=$(telemetry-api/scripts/test-db.sh) cargo test -p weft-telemetry-api
#   telemetry-api/scripts/test-db.sh stop
#
# Uses the Postgres server on 127.0.0.1:5432 when one answers. Otherwise it
# creates a throwaway cluster with initdb in a temporary directory, starts it
# on a free port (unix socket in that directory, trust auth) and prints its
# URL; `stop` stops that cluster and removes the directory. Only the URL goes
# to stdout; progress goes to stderr. WEFT_TEST_DB_THROWAWAY=1 skips the
# shared server and always uses a throwaway cluster.
set -euo pipefail

STATE_FILE="${WEFT_TEST_DB_STATE:-${TMPDIR:-/tmp}/weft-telemetry-test-db.path}"

# Postgres binaries: PATH first, then Debian's versioned directory.
for dir in /usr/lib/postgresql/*/bin; do
  [ -d "$dir" ] && PATH="$PATH:$dir"
done
export PATH

# initdb and postgres refuse to run as root; run them as `postgres` then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop() {
  if [ ! -f "$STATE_FILE" ]; then
    echo "no throwaway cluster recorded in $STATE_FILE" >&2
    return 0
  fi
  local dir
  dir=$(cat "$STATE_FILE")
  if [ -d "$dir/data" ]; then
    as_owner pg_ctl -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir" "$STATE_FILE"
  echo "stopped and removed $dir" >&2
}

start() {
  if [ -z "${WEFT_TEST_DB_THROWAWAY:-}" ] && pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "postgres://postgres@127.0.0.1:5432/postgres"
    return 0
  fi
  # A cluster this script started earlier and that still runs.
  if [ -f "$STATE_FILE" ]; then
    local old
    old=$(cat "$STATE_FILE")
    if [ -f "$old/url" ] && pg_isready -q -d "$(cat "$old/url")"; then
      cat "$old/url"
      return 0
    fi
    stop
  fi

  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/weft-telemetry-pg.XXXXXX")
  chmod 755 "$dir"
  mkdir "$dir/data" "$dir/socket"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir/data" "$dir/socket"
  fi
  port=55432
  while port_in_use "$port"; do
    port=$((port + 1))
  done
  echo "starting a throwaway Postgres in $dir on port $port" >&2
  as_owner initdb -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  as_owner pg_ctl -D "$dir/data" -l "$dir/socket/postgres.log" -w \
    -o "-p $port -k $dir/socket -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    start >&2
  echo "$dir" >"$STATE_FILE"
  echo "postgres://postgres@127.0.0.1:$port/postgres" | tee "$dir/url"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
