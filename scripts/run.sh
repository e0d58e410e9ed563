#!/bin/sh
# make run: start a private PostgreSQL under ./var (unless DATABASE_URL is
# set), migrate, and serve conf/payd.dev.conf on 127.0.0.1:8080. Ctrl-C or
# SIGTERM stops payd and the cluster this script started.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
conf=conf/payd.dev.conf
started_pg=""

cleanup() {
  if [ -n "${payd_pid:-}" ]; then kill -TERM "$payd_pid" 2>/dev/null || true; wait "$payd_pid" 2>/dev/null || true; fi
  if [ -n "$started_pg" ]; then scripts/pg.sh stop "$root/var/pg"; echo "run: stopped PostgreSQL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${DATABASE_URL:-}" ]; then
  PAYD_DATABASE_URL=$DATABASE_URL
else
  port=${PAYD_PG_PORT:-54329}
  admin=$(scripts/pg.sh start "$root/var/pg" "$port")
  started_pg=1
  psql -q "$admin" -tc "SELECT 1 FROM pg_database WHERE datname = 'payd'" | grep -q 1 \
    || psql -q "$admin" -c "CREATE DATABASE payd" >/dev/null
  PAYD_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/payd"
fi
export PAYD_DATABASE_URL
export PAYD_JWT_SECRET=${PAYD_JWT_SECRET:-payd-dev-jwt-secret-change-me}

"$build/payd" migrate -c "$conf"
mkdir -p var
# The key lives with the private cluster it was created in; with your own
# DATABASE_URL a fresh key is made each run.
if [ -n "$started_pg" ] && [ -s var/dev-admin-key ]; then
  key=$(cat var/dev-admin-key)
else
  key=$("$build/payd" apikey create --role admin --description "make run" -c "$conf" 2>/dev/null)
  [ -n "$started_pg" ] && printf '%s\n' "$key" > var/dev-admin-key
fi

"$build/payd" serve -c "$conf" &
payd_pid=$!
i=0
until curl -fs http://127.0.0.1:8080/readyz >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 100 ] && { echo "run: payd did not become ready" >&2; exit 1; }
  kill -0 "$payd_pid" 2>/dev/null || { echo "run: payd exited" >&2; exit 1; }
  sleep 0.1
done
cat <<MSG

payd is serving the mock checkout at http://127.0.0.1:8080  (Ctrl-C stops it)
Admin API key (kept in var/dev-admin-key): $key

Try a checkout:
  K=$key
  curl -s localhost:8080/v1/orders -H "Authorization: Bearer \$K" -H 'Content-Type: application/json' \\
    -d '{"currency":"USD","items":[{"name":"Tea","quantity":2,"unit_amount":1250}],"customer_email":"a@example.com"}'
  curl -s localhost:8080/v1/payments -H "Authorization: Bearer \$K" -H 'Content-Type: application/json' \\
    -d '{"order":"<ord_ id from above>","payment_method":"pm_card_visa","confirm":true}'
More in README.md.
MSG
wait "$payd_pid"
