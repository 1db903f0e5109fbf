#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ $# -gt 0 ]; then
  exec python -m pytest -q "$@"
fi
# The default run (slow tests deselected), then the two resume tests that kill a real training
# process (slow only for their two fresh processes' imports): CI keeps both.
python -m pytest -q
python -m pytest -q -m slow -k real_interrupt
