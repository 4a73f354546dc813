#!/usr/bin/env bash
# The one entry point behind the npm scripts: prepares Node 24, dependencies and (where needed) the
# local services, then runs the command.
#
#   scripts/run.sh test [jest args]    every test (unit + integration) in one jest run
#   scripts/run.sh start [up.ts args]  the whole pipeline locally (tools/dev/up.ts)
#   scripts/run.sh bench <name> [...]  a benchmark (tools/bench)
#   scripts/run.sh nx <args>           nx without daemon or cloud
#   scripts/run.sh services            only make sure the local services answer
#   scripts/run.sh <anything else>     run it with the prepared PATH (node 24, node_modules/.bin)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SLUICE_ROOT"

[[ $# -gt 0 ]] || die "usage: scripts/run.sh test|start|bench|nx|services|<command> [args...]"
cmd=$1
shift

ensure_node
ensure_deps
export_service_env # defaults for the local services; ensure_services below makes them true

run_tests() {
  local tmp out code summary limit=${SLUICE_TEST_TIMEOUT:-2100}
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  out="$tmp/jest.json"
  set +e
  # Bounded: a test that leaves a connection open keeps jest alive after the last suite.
  timeout -k 30 "$limit" jest --ci --json --outputFile="$out" "$@"
  code=$?
  set -e
  if [[ $code == 124 || $code == 137 ]]; then
    warn "jest did not finish within ${limit}s (SLUICE_TEST_TIMEOUT) and was stopped; if every suite had finished, a test leaves a handle open (close clients in afterAll; find it with --detectOpenHandles)"
  fi
  if [[ ! -s "$out" ]]; then
    echo "tests: 0 passed, 0 failed"
    warn "jest wrote no results (exit code $code); see the output above"
    exit $((code == 0 ? 1 : code))
  fi
  # shellcheck disable=SC2016 # JavaScript, not shell
  summary="$(node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const skipped = (r.numPendingTests || 0) + (r.numTodoTests || 0);
    const broken = r.numRuntimeErrorTestSuites || 0;
    let line = `tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`;
    if (skipped > 0) line += `, ${skipped} skipped`;
    console.log([r.numTotalTests, broken, line].join("\t"));
  ' "$out")"
  local total broken line
  IFS=$'\t' read -r total broken line <<<"$summary"
  ((broken == 0)) || warn "$broken test file(s) failed to run (see the errors above)"
  echo "$line"
  if ((code == 0 && total == 0)); then
    warn "no test ran: failing on purpose"
    exit 1
  fi
  exit "$code"
}

case $cmd in
  test)
    ensure_services
    run_tests "$@"
    ;;
  start)
    ensure_services
    exec tsx tools/dev/up.ts "$@"
    ;;
  bench)
    ensure_services
    exec tsx tools/bench/src/main.ts "$@"
    ;;
  nx)
    NX_DAEMON=false NX_NO_CLOUD=true exec nx "$@"
    ;;
  services)
    ensure_services
    printf '%s\n' "NATS_URL=$NATS_URL" "REDIS_URL=$REDIS_URL" "PG_URL=$PG_URL" "MONGO_URL=$MONGO_URL" \
      "AMQP_URL=$AMQP_URL" "MQTT_URL=$MQTT_URL"
    ;;
  *)
    exec "$cmd" "$@"
    ;;
esac
