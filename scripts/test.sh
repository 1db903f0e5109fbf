#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ $# -gt 0 ]; then
  exec python -m pytest -q "$@"
fi
# The default run: every test not marked slow (under 10 minutes on 2 cores). CI (.ci/run) then
# runs a selection of the slow ones: `bash scripts/test.sh -m slow -k "..."` runs any of them.
python -m pytest -q --durations=25
