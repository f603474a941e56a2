#!/usr/bin/env bash
# End-to-end scenarios (issue 7) will live in e2e/; until then this says so.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "e2e: no scenarios yet; the node simulator and scenarios are issue 7" >&2
exit 0
