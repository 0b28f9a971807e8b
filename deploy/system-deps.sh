#!/usr/bin/env bash
# Checks the system programs the local launcher needs and installs the missing ones with
# apt-get when running as root on Debian/Ubuntu. Elsewhere it says what to install.
set -euo pipefail
missing=()
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
# tests/e2e/test_report.py opens `lifelong report` pages in headless Chromium.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start their own services; ours run on other ports, stop theirs.
  for svc in redis-server prometheus; do
    (command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1) || true
  done
else
  echo "missing: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]})," >&2
  echo "or point KAFKA_BOOTSTRAP_SERVERS / REDIS_URL / PROMETHEUS_URL at running services." >&2
  exit 1
fi
