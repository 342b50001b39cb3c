#!/usr/bin/env bash
# Runs one k6 load scenario against a running platform (bash scripts/start.sh, or your cluster):
#   bash scripts/load.sh <connect-storm|fanout|chat|soak> [k6 run options…]
# k6: $K6, else `k6` on PATH, else ../shared/tools/k6. Writes k6's end-of-test summary
# (tests/load/reports/<scenario>-<time>-<pid>.json) and an HTML report beside it. Exit code: k6's
# (99 when a threshold is crossed).
set -euo pipefail
cd "$(dirname "$0")/.."
SAY_PREFIX=load DIE_STATUS=2
. scripts/lib.sh

scenario=${1:-}
[ -n "$scenario" ] || die "usage: pnpm load <connect-storm|fanout|chat|soak> [k6 run options…]"
shift
script="tests/load/k6/$scenario.ts"
[[ "$scenario" =~ ^[a-z-]+$ ]] && [ -f "$script" ] || die "unknown scenario '$scenario' (known: $(cd tests/load/k6 && ls ./*.ts | xargs -n1 basename | sed 's/\.ts$//' | tr '\n' ' '))"

k6=${K6:-}
if [ -z "$k6" ]; then
  if command -v k6 >/dev/null 2>&1; then k6=k6
  elif [ -x ../shared/tools/k6 ]; then k6=../shared/tools/k6
  fi
fi
[ -n "$k6" ] && "$k6" version >/dev/null 2>&1 ||
  die "k6 not found: install k6 ≥ 1.3 (https://grafana.com/docs/k6/latest/set-up/install-k6/) and put it on PATH, or set K6=/path/to/k6"

reports=tests/load/reports
mkdir -p "$reports"
base="$reports/$scenario-$(date -u +%Y%m%dT%H%M%SZ)-$$" # the pid: two runs in one second keep both reports
say "$scenario with $("$k6" version | head -n1)"
status=0
K6_WEB_DASHBOARD=true K6_WEB_DASHBOARD_PORT=-1 K6_WEB_DASHBOARD_EXPORT="$base.html" \
  "$k6" run --summary-export "$base.json" "$@" "$script" || status=$?
written=()
for file in "$base.json" "$base.html"; do [ -f "$file" ] && written+=("$file"); done
# k6 skips the HTML report of a run too short to chart.
say "${written[*]:-no report} (exit $status)"
exit "$status"
