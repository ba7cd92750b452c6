#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, then .venv with
# vlmq and everything it needs. Sourced by scripts/up.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=()
command -v redis-server >/dev/null || packages+=(redis-server)
if [ "${VLMQ_SETUP_TEST_TOOLS:-0}" = 1 ]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
  # The deployment tests render docker-compose.yml and the Caddyfile offline; promtool checks the alerts.
  command -v docker-compose >/dev/null || packages+=(docker-compose)
  command -v caddy >/dev/null || packages+=(caddy)
  command -v promtool >/dev/null || packages+=(prometheus)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${packages[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  # torchvision makes transformers' AutoProcessor work; this pair installs offline here.
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install -q -e '.[inference,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
