#!/usr/bin/env bash
# The test command (`make test`, and CI through .ci/run). Uses Docker for the sandbox tests where an engine answers.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
"$PY" -m pytest -q -ra --durations=15 "$@"
rc=$?
# pytest exits 5 when it collected no tests: that is a broken suite, not a pass.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
