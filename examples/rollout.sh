#!/usr/bin/env bash
# Two-version rollout demo: rolls /shop/hello (examples/apps/20-hello.json, deployed by
# `drover dev` or `drover apply -f examples`) from its current version to a second one,
# following the deployment, then shows which version every instance answers with.
#
#   examples/rollout.sh            # to version 2
#   examples/rollout.sh 3          # any label (it goes into HELLO_VERSION)
#
# Each instance answers with the version Drover gave it (DROVER_VERSION, the app version).
#
# The app's upgradeStrategy (minimumHealthCapacity 0.5, maximumOverCapacity 0.5) keeps at
# least 2 of its 3 instances healthy throughout: new instances must pass their HTTP
# health check before old ones are killed. `drover apps rollback /shop/hello` goes back.
set -euo pipefail
cd "$(dirname "$0")"
label=${1:-2}
drover=${DROVER:-drover}

scheduler=${DROVER_SCHEDULER:-http://127.0.0.1:8080}

# Asks every instance which version it runs, through Marathon's task list.
show() {
  curl -fsS "$scheduler/v2/apps/shop/hello/tasks" |
    grep -o '"host":"[^"]*"\|"ports":\[[0-9]*' | paste - - |
    sed -E 's/"host":"([^"]*)"[[:space:]]*"ports":\[([0-9]*)/\1 \2/' |
    while read -r host port; do
      curl -fsS "http://$host:$port/" || echo "(no answer from $host:$port)"
    done
}

echo "before:"; show || true
# Version 2 is version 1 with one more environment variable: any change to the
# definition is a new version, rolled out under the app's upgrade strategy.
sed "s/\"cmd\": \"exec hello --host 0.0.0.0\",/&\n  \"env\": { \"HELLO_VERSION\": \"$label\" },/" apps/20-hello.json |
  "$drover" apps update -f - --wait
echo "after:"; show
