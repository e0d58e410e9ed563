#!/bin/sh
# Installs the Debian packages payd needs to build, run and test, if any are
# missing. As root it runs apt-get itself; otherwise it prints the command.
set -eu
PKGS="gcc make pkg-config libcivetweb-dev libpq-dev libcurl4-openssl-dev libssl-dev
libhiredis-dev libjansson-dev libinih-dev libjwt-dev libcmocka-dev postgresql
redis-server curl zlib1g-dev libcairo2-dev fonts-dejavu-core poppler-utils openssl
python3 python3-jsonschema"
[ "${PAYD_BENCH:-0}" = 1 ] && PKGS="$PKGS wrk"
[ "${PAYD_FUZZ:-0}" = 1 ] && PKGS="$PKGS clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
else
  echo "deps: missing packages:$missing"
  echo "deps: run: sudo apt-get update && sudo apt-get install -y$missing"
  exit 1
fi
