#!/usr/bin/env bash
# Set up (first run only) and run the whole service: SQLite, a private Redis,
# the web server and one worker on the tiny offline model. Extra args go to `vlmq up`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec .venv/bin/vlmq up "$@"
