#!/usr/bin/env bash
# The README's test command: installs what the tests use when it is missing
# (on Debian/Ubuntu, as root or through sudo), starts the machine's
# PostgreSQL and Redis when they are installed but not running, then runs
# `cargo test` with any arguments given (`bash scripts/test.sh --test rooms`).
#
# Without PostgreSQL or Redis running, `cargo test` starts private ones from
# the installed binaries (tests/common/services.rs). Every test that needs
# something missing fails and names it: none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
updated=""
install() {
  if ! command -v apt-get >/dev/null; then
    echo "scripts/test.sh: $* missing and no apt-get here: install it, then run again" >&2
    return 0 # the tests that need it fail and name it
  fi
  [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# psql and the PostgreSQL server binaries (the tests start a private
# cluster from them when none answers), and redis-server (the fault tests
# start private ones).
command -v psql >/dev/null || install postgresql postgresql-client
command -v redis-server >/dev/null || install redis-server
# The machine's PostgreSQL and Redis, started if installed but not running.
bash scripts/services.sh

# Node.js and npm for the JavaScript client (tests/js_client.rs runs `npm ci`
# itself); chromium for the browser tests of the client, demo and admin page.
command -v npm >/dev/null || install nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] || echo "scripts/test.sh: the JavaScript client's tests need Node.js 20 or later (found: $(node --version 2>/dev/null || echo none)); they will fail" >&2
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || install chromium
# nginx for tests/proxies.rs (the shipped ops/nginx/realtime.conf).
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || install nginx
# promtool (the prometheus package) for tests/ops.rs, installed without
# starting the service.
if ! command -v promtool >/dev/null; then
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    install --no-install-recommends prometheus
    $SUDO rm -f /usr/sbin/policy-rc.d
  else
    install --no-install-recommends prometheus
  fi
fi
# python3 with venv and pip for tests/openapi.rs (it installs a pinned
# schemathesis from PyPI under target/).
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || install python3-venv python3-pip

exec cargo test "$@"
