#!/usr/bin/env bash
# The test command: installs everything the tests need on a fresh machine,
# then runs lint, type checks and the whole test suite. The tests start their
# own local servers (Firestore emulator JAR, Cloud Tasks emulator, Secret
# Manager / Calendar API / EWS sandboxes, functions-framework) on 127.0.0.1.
# Extra arguments go to pytest, e.g. ./test.sh tests/engine -x
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# gcloud-tasks-emulator pins an old protobuf: install it without its dependencies.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps gcloud-tasks-emulator==0.6.2
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
# checkov cannot share a venv with the pinned tools: its own venv (see tests/infra/).
bash tests/infra/install_checkov.sh >/dev/null

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null; then
    sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
# axe-core (npm) for the browser tests' accessibility check, injected into pages by Playwright.
if [ ! -f tests/ui/axe/node_modules/axe-core/axe.min.js ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    elif command -v sudo >/dev/null; then
      sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    fi
  fi
  (cd tests/ui/axe && npm install --no-audit --no-fund --silent)
fi
command -v java >/dev/null || echo "warning: no java: the Firestore emulator tests need Java 17" >&2

.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
