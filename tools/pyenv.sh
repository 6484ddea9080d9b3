#!/usr/bin/env bash
# Idempotent: a Python venv with the evaluation tools (pycocotools, py-motmetrics) in
# target/pyenv. Prints the interpreter path. Used by tests/run.sh and the eval scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyenv
stamp=$venv/.requirements
if [ ! -x "$venv/bin/python" ] || ! cmp -s tools/requirements.txt "$stamp"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r tools/requirements.txt >&2
  cp tools/requirements.txt "$stamp"
fi
echo "$PWD/$venv/bin/python"
