#!/usr/bin/env bash
# Posts every example to a running Drover cluster, as the original Mesos demo's
# init-cluster.sh did: Marathon apps to POST /v2/apps, Chronos jobs to
# /scheduler/iso8601 (scheduled) or /scheduler/dependency (dependent, parents first).
# Reports each result; exits non-zero if any definition was refused.
#
#   ./init-cluster.sh [SCHEDULER_URL] [EXAMPLES_DIR]
#
# SCHEDULER_URL defaults to $DROVER_SCHEDULER, else http://127.0.0.1:8080 (what
# `drover dev` prints in its export line). EXAMPLES_DIR defaults to examples/ next to
# this script; every *.json under it is posted (subfolders included). An app that
# already exists (409) is reported and left as it is, so running this twice is harmless.
set -uo pipefail

url="${1:-${DROVER_SCHEDULER:-http://127.0.0.1:8080}}"
url="${url%/}"
dir="${2:-$(cd "$(dirname "$0")" && pwd)/examples}"
auth=()
if [ -n "${DROVER_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $DROVER_TOKEN"); fi

command -v curl >/dev/null || { echo "init-cluster: curl is required" >&2; exit 2; }
[ -d "$dir" ] || { echo "init-cluster: no examples folder at $dir" >&2; exit 2; }

apps=() scheduled=() dependent=() failures=0
while IFS= read -r -d '' f; do
  if grep -q '"parents"' "$f"; then dependent+=("$f")
  elif grep -q '"schedule"' "$f"; then scheduled+=("$f")
  elif grep -q '"id"' "$f"; then apps+=("$f")
  else echo "SKIP  $f: neither a Marathon app nor a Chronos job"; fi
done < <(find "$dir" -name '*.json' -type f -print0 | sort -z)

# post PATH FILE: prints "CODE BODY" of the answer (code 000 when unreachable).
post() {
  local out code
  out=$(curl -sS -o - -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
    "${auth[@]}" --data-binary @"$2" "$url$1" 2>&1)
  code=${out##*$'\n'}
  printf '%s %s' "$code" "${out%$'\n'*}" | tr '\n' ' '
}

report_ok()   { echo "OK    $1 -> $2"; }
report_fail() { echo "FAIL  $1 -> $2" >&2; failures=$((failures + 1)); }

for f in "${apps[@]}"; do
  res=$(post /v2/apps "$f"); code=${res%% *}
  case "$code" in
    200|201) report_ok "$f" "app created ($code)";;
    409) report_ok "$f" "app already exists, left unchanged";;
    *) report_fail "$f" "app refused: HTTP $res";;
  esac
done

for f in "${scheduled[@]}"; do
  res=$(post /scheduler/iso8601 "$f"); code=${res%% *}
  case "$code" in
    2??) report_ok "$f" "scheduled job accepted ($code)";;
    *) report_fail "$f" "job refused: HTTP $res";;
  esac
done

# Dependent jobs: a child is refused while its parent is unknown, so post in passes
# until a pass makes no progress; what is left is reported with its last answer.
left=("${dependent[@]}")
while [ ${#left[@]} -gt 0 ]; do
  next=() last=()
  for f in "${left[@]}"; do
    res=$(post /scheduler/dependency "$f"); code=${res%% *}
    case "$code" in
      2??) report_ok "$f" "dependent job accepted ($code)";;
      *) next+=("$f"); last+=("$res");;
    esac
  done
  if [ ${#next[@]} -eq ${#left[@]} ]; then
    for i in "${!next[@]}"; do report_fail "${next[$i]}" "job refused: HTTP ${last[$i]}"; done
    break
  fi
  left=("${next[@]}")
done

total=$(( ${#apps[@]} + ${#scheduled[@]} + ${#dependent[@]} ))
if [ "$failures" -gt 0 ]; then
  echo "init-cluster: $failures of $total definitions FAILED against $url" >&2
  exit 1
fi
echo "init-cluster: all $total definitions posted to $url"
