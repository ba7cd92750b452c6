#!/usr/bin/env bash
# Set up (first run only), lint, and run the whole test suite against a real Redis,
# SQLite and a throwaway PostgreSQL cluster. Extra args go to pytest.
set -euo pipefail
export VLMQ_SETUP_TEST_TOOLS=1
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
