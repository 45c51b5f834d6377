#!/usr/bin/env bash
# Make tests/infra/.checkov-venv with the pinned checkov (see requirements-checkov.txt).
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.checkov-venv"
want="$(grep -E '^checkov==' "$here/requirements-checkov.txt" | cut -d= -f3)"
if [ -x "$venv/bin/checkov" ] && "$venv/bin/python" -c "import importlib.metadata as m,sys; sys.exit(m.version('checkov') != '$want')" 2>/dev/null; then
  exit 0
fi
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-checkov.txt"
"$venv/bin/checkov" --version
