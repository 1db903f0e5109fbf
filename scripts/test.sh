#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ $# -gt 0 ]; then
  exec python -m pytest -q "$@"
fi
# The default run (slow tests deselected), then the slow part of the fault-injection suite:
# real SIGKILL/SIGINT of fresh processes and every stored file truncated or emptied (slow only
# for their many fresh processes and cases), the LLC accuracy checks, the Slurm array, the notebook
# page and the recorder's example script (each a fresh process tree). CI runs both; `-m slow` alone adds the long
# end-to-end runs (quickstart to grokking).
python -m pytest -q --durations=25
python -m pytest -q -m slow -k "real_interrupt or sigkill or truncate or empty or llc or slurm or notebook or example_script"
