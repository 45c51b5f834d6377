#!/usr/bin/env bash
# The run command: spokesync on this machine with embedded defaults (SQLite,
# a local encrypted secret file, an in-process queue, one local web server),
# plus local Google Calendar and EWS servers with sample calendars so that a
# first two-way sync needs no accounts. Open the URL it prints.
# Without the sample servers: ./run.sh --no-demo   (other arguments go to `spokesync serve`)
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
demo=--demo
args=()
for a in "$@"; do
  if [ "$a" = "--no-demo" ]; then demo=""; else args+=("$a"); fi
done
exec .venv/bin/spokesync serve $demo "${args[@]}"
