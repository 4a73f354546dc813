#!/usr/bin/env bash
# The detection export demo in one command: makes sure the local servers answer, then runs demo.ts
# (Node 24 through scripts/run.sh). Arguments go to demo.ts: [--seconds 20] [--fps 5].
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash scripts/run.sh services >/dev/null
exec bash scripts/run.sh tsx examples/detection-export/demo.ts "$@"
