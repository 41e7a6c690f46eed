#!/usr/bin/env bash
# The end-to-end test on real VMs: bare Debian 12 VMs to a running Drover cluster
# with the project's own Vagrantfile and playbooks, then a second site.yml run, an
# upgrade, and the loss of an agent. Prints each phase's time and a recap.
#
#   tests/vm/e2e.sh            # as root, on a Debian 12 machine (scripts/vm/install-deps)
#
# Everything runs inside a network namespace that scripts/vm/netns-up makes (only `lo`;
# libvirt's networks and the VMs exist only in it); the VMs are destroyed and the
# namespace deleted at the end, whatever happens. The box is cached between runs
# (scripts/vm/build-box; rebuilt only when its recipe changes).
#
# Phases, in order: lint; packages and the box; build A (scripts/dist) and build B (the
# same sources reporting another version, scripts/dist --version); boot a master and two
# agents; site.yml; init-cluster.sh (the examples); every example app ready on both
# agents and the minutely `date` job run; site.yml again and in check mode, both
# changed=0; upgrade.yml to build B while a load loop hits every `hello` instance and a
# task on each agent must keep its PID; virsh destroy agent2 and its tasks come back on
# agent1. The recap at the end gives each phase's time and the figures.
#
# Environment:
#   DROVER_E2E_DIST      a dist/ folder to install (default: build one with scripts/dist)
#   DROVER_E2E_DIST2     a second build for upgrade.yml (default: scripts/dist --version)
#   DROVER_E2E_KEEP=1    leave the VMs and the namespace up at the end (for debugging)
#   DROVER_VM_CACHE, DROVER_VM_STATE, DROVER_VM_NS: see scripts/vm/common.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
. scripts/vm/common.sh

[ "$(id -u)" = 0 ] || die "run as root"

run_dir=$DROVER_VM_STATE/e2e
export VAGRANT_DOTFILE_PATH=$run_dir/vagrant
export ANSIBLE_CONFIG=$repo/playbooks/ansible.cfg
# Each task's time and the slowest tasks at the end of every playbook log, so a slower
# run shows where the time went (with the ansible package's collections; ansible-core
# alone skips the callback with a warning).
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
export DROVER_BOX=$DROVER_LOCAL_BOX DROVER_AGENTS=2
# 640 MiB and 1 vCPU per VM: three software-emulated VMs fit a 2-core build machine.
export DROVER_VM_MEMORY=${DROVER_VM_MEMORY:-640} DROVER_VM_CPUS=${DROVER_VM_CPUS:-1}
export DROVER_VM_CONSOLE_DIR=$run_dir/console
master=http://192.168.56.10:5050
scheduler=http://192.168.56.10:8080

# --- Phases, timings and the recap ---------------------------------------------------------

recap=()
failed=0
# Runs one phase: phase NAME COMMAND...; records its time and result.
phase() {
  local name=$1 start rc=0
  shift
  log "== $name"
  start=$(date +%s)
  "$@" || rc=$?
  local secs=$(($(date +%s) - start))
  if [ $rc -eq 0 ]; then
    recap+=("$(printf '%-44s %5ss  ok' "$name" "$secs")")
  else
    recap+=("$(printf '%-44s %5ss  FAILED (exit %s)' "$name" "$secs" "$rc")")
    failed=1
  fi
  return $rc
}
print_recap() {
  echo
  echo "== e2e recap =="
  printf '%s\n' "${recap[@]}"
  for line in "${facts[@]}"; do echo "   $line"; done
}
facts=()
fact() { facts+=("$*"); log "$*"; }

# Where each VM's serial console is logged: what to read when a VM does not boot.
console_logs() {
  local f
  for f in "$DROVER_VM_CONSOLE_DIR"/*-console.log; do
    [ -f "$f" ] || continue
    echo "   console of $(basename "$f" -console.log): $f; its last lines:"
    tail -n 8 "$f" | tr -d '\r' | sed 's/^/      /'
  done
}

ns_up=0 vms_made=0
cleanup() {
  local rc=$?
  trap - EXIT
  if [ $ns_up = 0 ]; then
    : # no namespace was made: nothing to tear down
  elif [ "${DROVER_E2E_KEEP:-}" = 1 ]; then
    log "DROVER_E2E_KEEP=1: leaving the VMs and namespace up (scripts/vm/netns-down ends them)"
  else
    phase "destroy the VMs" scripts/vm/nsrun vagrant destroy -f >/dev/null 2>&1 || true
    phase "stop libvirtd and delete the namespace" scripts/vm/netns-down || true
  fi
  # A step of the teardown that failed fails the run: VMs may be left behind.
  [ $rc -ne 0 ] || [ $failed -eq 0 ] || rc=1
  print_recap
  if [ $vms_made = 1 ] && { [ $failed -ne 0 ] || [ $rc -ne 0 ]; }; then
    echo "   the VMs' serial consoles (where a VM that did not boot or answer says why):"
    console_logs
  fi
  if [ $failed -eq 0 ] && [ $rc -eq 0 ]; then
    echo "e2e: passed"
  else
    [ ! -d "$run_dir" ] || echo "   logs of this run: $run_dir"
    echo "e2e: FAILED"
  fi
  exit $rc
}
# Set before the first phase, so that a failure anywhere (the first phase included) ends
# with the recap; an interrupted run still destroys its VMs (bash runs the EXIT trap).
trap cleanup EXIT
trap 'exit 143' TERM INT

# Runs a command in the namespace with the inventory of the Vagrant cluster.
ns() { scripts/vm/nsrun "$@"; }
playbook() { ns ansible-playbook -i inventory/vagrant -e "drover_dist_dir=$dist" "$@"; }
# The dist's own CLI, from the controller (inside the namespace), with the cluster's token.
drover() {
  ns env DROVER_MASTER=$master DROVER_SCHEDULER=$scheduler \
    DROVER_TOKEN_FILE="$VAGRANT_DOTFILE_PATH/drover-token" "$dist/drover" "$@"
}
# Reads JSON on stdin and prints what the Python expression EXPR makes of it (as `d`).
# Further arguments are the script's sys.argv[1:].
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1" "${@:2}"; }
# Polls COMMAND every 3 s until it succeeds, for at most SECONDS: until SECONDS COMMAND...
until_ok() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { log "gave up after waiting: $*"; return 1; }
    sleep 3
  done
}
# The PLAY RECAP lines of an ansible log, and whether every host has changed=0.
recap_lines() { sed -n '/PLAY RECAP/,/^$/p' "$1" | grep -E 'ok=' || true; }
all_unchanged() {
  local lines
  lines=$(recap_lines "$1")
  [ -n "$lines" ] && ! grep -qv 'changed=0 ' <<<"$lines"
}

# --- 0. Dependencies and the box -------------------------------------------------------------

phase "yamllint + ansible-lint production (scripts/lint)" scripts/lint
phase "install packages (scripts/vm/install-deps)" scripts/vm/install-deps
phase "build or reuse the box (scripts/vm/build-box)" scripts/vm/build-box

# --- 1. The binaries: build A, and build B that reports another version ------------------------

# A run left up (DROVER_E2E_KEEP=1) or interrupted hard: end it first.
if [ -d "$run_dir/vagrant" ] && ip netns list | grep -qw "$DROVER_VM_NS"; then
  scripts/vm/nsrun vagrant destroy -f >/dev/null 2>&1 || true
fi
scripts/vm/netns-down >/dev/null
rm -rf "$run_dir"
mkdir -p "$run_dir" "$DROVER_VM_CONSOLE_DIR"

dist=${DROVER_E2E_DIST:-}
if [ -z "$dist" ]; then
  phase "build A (scripts/dist)" scripts/dist
  dist=$repo/dist
fi
version_a=$("$dist/drover" --version | awk '{print $NF}')
dist2=${DROVER_E2E_DIST2:-}
if [ -z "$dist2" ]; then
  dist2=$run_dir/dist2
  phase "build B (scripts/dist --version $version_a-e2e2)" \
    scripts/dist --version "$version_a-e2e2" --out "$dist2"
fi
version_b=$("$dist2/drover" --version | awk '{print $NF}')
fact "build A reports $version_a, build B reports $version_b"
[ "$version_a" != "$version_b" ] || die "build B reports the same version as build A"
for b in "$dist"/drover* "$dist2"/drover*; do
  file "$b" | grep -qE 'statically linked|static-pie linked' || die "$b is not statically linked"
done
export DROVER_DIST_DIR=$dist

# --- 2. VMs, the cluster and the examples ----------------------------------------------------------

ns_up=1
phase "start libvirtd in the namespace (netns-up)" scripts/vm/netns-up

up_started=$SECONDS
# Boot all three, then provision once across all of them (more reliable than one
# `vagrant up` whose provisioner runs on the last machine while others still boot).
# Vagrant's output is shown as it comes (a VM that hangs at boot is otherwise minutes of
# silence) and kept in a file; when a VM does not come up, its console log says why.
vagrant_up() {
  log "vagrant up: VM consoles are logged in $DROVER_VM_CONSOLE_DIR"
  ns vagrant up --provider=libvirt --no-provision 2>&1 | tr '\r' '\n' | grep --line-buffered -v 'Progress:' |
    tee "$run_dir/vagrant-up.log" | sed -u 's/^/   vagrant: /' >&2
}
vms_made=1
phase "vagrant up --no-provision (3 VMs)" vagrant_up
phase "ansible ping" ns ansible -i inventory/vagrant all -m ansible.builtin.ping -o

site1() { ns vagrant provision "agent$DROVER_AGENTS" >"$run_dir/site1.log" 2>&1; }
phase "site.yml through vagrant provision" site1
recap_lines "$run_dir/site1.log" | sed 's/^/   site.yml 1: /'

nodes_line() { drover nodes --json | jq_py 'print(", ".join(n["name"]+" "+n["state"]+" "+n["version"] for n in d))'; }
fact "nodes: $(nodes_line)"

# The process examples (apps/ and jobs/): the VMs have no Docker Engine, so the container
# examples in examples/docker/ could not be placed (tests/tests/docker.rs runs those).
init_cluster() {
  mkdir -p "$run_dir/examples"
  cp -r examples/apps examples/jobs "$run_dir/examples/"
  ns env DROVER_TOKEN="$(cat "$VAGRANT_DOTFILE_PATH/drover-token")" ./init-cluster.sh "$scheduler" \
    "$run_dir/examples" >"$run_dir/init-cluster.log" 2>&1
}
phase "init-cluster.sh (the examples)" init_cluster
sed 's/^/   init-cluster: /' "$run_dir/init-cluster.log"

# Every example app has all its instances ready, and between them they use both agents.
apps_ready() {
  drover apps --json >"$run_dir/apps.json" 2>/dev/null || return 1
  drover tasks --json >"$run_dir/tasks.json" 2>/dev/null || return 1
  jq_py '
ok = len(d) >= 4 and all(a.get("status") and a["status"]["tasks"]["ready"] >= a["app"]["instances"] for a in d)
sys.exit(0 if ok else 1)' <"$run_dir/apps.json" &&
    [ "$(jq_py 'print(len({t["spec"]["node"] for t in d if "drover.app" in t["spec"]["definition"].get("labels", {})}))' <"$run_dir/tasks.json")" = 2 ]
}
phase "every example app ready, across both agents" until_ok 600 apps_ready
fact "vagrant up to every example app ready: $((SECONDS - up_started)) s"
app_placement() {
  jq_py '
from collections import defaultdict
by = defaultdict(list)
for t in d:
    app = t["spec"]["definition"].get("labels", {}).get("drover.app")
    if app and t["state"] in ("running", "healthy"):
        by[app].append(t["spec"]["node"])
print("; ".join(f"{a}: {sorted(n)}" for a, n in sorted(by.items())))' <"$run_dir/tasks.json"
}
fact "instances by app: $(app_placement)"

date_job_ran() {
  local n
  n=$(drover jobs stats date --json 2>/dev/null | jq_py 'print(d.get("successCount", d.get("success_count", 0)))') || return 1
  [ "${n:-0}" -ge 1 ]
}
phase "the minutely date job has run" until_ok 240 date_job_ran

# --- 3. Idempotence -------------------------------------------------------------------------------

site2() { playbook playbooks/site.yml >"$run_dir/site2.log" 2>&1; }
phase "site.yml again" site2
recap_lines "$run_dir/site2.log" | sed 's/^/   site.yml 2: /'
phase "site.yml again reports changed=0" all_unchanged "$run_dir/site2.log"

check_run() { playbook --check playbooks/site.yml >"$run_dir/site-check.log" 2>&1; }
phase "site.yml --check" check_run
phase "site.yml --check reports changed=0" all_unchanged "$run_dir/site-check.log"

# --- 4. Upgrade to build B, under load -----------------------------------------------------------

# One long-running task on each agent, straight through the master; it and every app
# instance must keep its PID through the agents' upgrade.
launch_keepers() {
  local a
  for a in agent1 agent2; do
    drover tasks launch --node "$a" --name keeper --label e2e=keeper --cpus 0.01 --mem 8 -- sleep 100000 >/dev/null || return 1
  done
  until_ok 120 keepers_running
}
keepers_running() { [ "$(drover tasks --label e2e=keeper --json | jq_py 'print(sum(t["state"] == "running" for t in d))')" = 2 ]; }
phase "launch a task on each agent" launch_keepers
# id node pid of every active task, sorted.
task_pids() { drover tasks --json | jq_py 'print("\n".join(sorted("%s %s %s" % (t["spec"]["id"], t["spec"]["node"], t.get("pid")) for t in d)))'; }
pids_before=$(task_pids)
fact "tasks before the upgrade: $(wc -l <<<"$pids_before") ($(grep -c . <<<"$(grep keeper <<<"$pids_before")") keepers)"
versions() {
  printf 'master=%s scheduler=%s %s' \
    "$(drover version --json | jq_py 'print(d["master"]["version"])')" \
    "$(ns curl -fsS -H "Authorization: Bearer $(cat "$VAGRANT_DOTFILE_PATH/drover-token")" \
      "$scheduler/v1/version" | jq_py 'print(d["version"])')" \
    "$(drover nodes --json | jq_py 'print(" ".join(n["name"]+"="+n["version"] for n in d))')"
}
fact "versions before the upgrade: $(versions)"

# The load loop: every `hello` instance, by its node's address and host port.
hello_urls() {
  drover nodes --json >"$run_dir/nodes.json" &&
    drover tasks --label drover.app=/shop/hello --json | jq_py '
nodes = {n["name"]: n["address"] for n in json.load(open(sys.argv[1]))}
for t in d:
    if t["state"] in ("running", "healthy"):
        host = nodes[t["spec"]["node"]].split("://")[-1].rsplit(":", 1)[0]
        print("http://%s:%s/" % (host, t["spec"]["hostPorts"][0]))' "$run_dir/nodes.json"
}
hello_urls >"$run_dir/hello-urls" && [ -s "$run_dir/hello-urls" ] || die "no hello instance to load"
fact "load loop targets: $(tr '\n' ' ' <"$run_dir/hello-urls")"
ns tests/vm/load-loop "$run_dir/hello-urls" "$run_dir/load.stop" "$run_dir/load.result" 1800 &
load_pid=$!

upgrade() {
  ns ansible-playbook -i inventory/vagrant -e "drover_dist_dir=$dist2" playbooks/upgrade.yml >"$run_dir/upgrade.log" 2>&1
}
phase "upgrade.yml to build B (master, scheduler, agents 1 + 25%)" upgrade
recap_lines "$run_dir/upgrade.log" | sed 's/^/   upgrade.yml: /'
# A few more seconds of load on the upgraded cluster, then stop the loop.
sleep 5
touch "$run_dir/load.stop"
wait "$load_pid" || true
read -r load_requests load_failed <"$run_dir/load.result" || { load_requests=0; load_failed=unknown; }
fact "load loop during the upgrade: $load_requests requests, $load_failed failed"
[ -s "$run_dir/load.result.failures" ] && sed 's/^/   failed request: /' "$run_dir/load.result.failures" | head -20
no_failed_request() { [ "$load_failed" = 0 ] && [ "$load_requests" -gt 0 ]; }
phase "no failed request during the upgrade" no_failed_request

versions_after=$(versions)
fact "versions after the upgrade: $versions_after"
all_on_b() {
  local v
  for v in $versions_after; do
    [ "${v#*=}" = "$version_b" ] || { log "not on $version_b: $v"; return 1; }
  done
}
phase "master, scheduler and both agents report build B" all_on_b
pids_after=$(task_pids)
same_pids() {
  [ "$pids_before" = "$pids_after" ] && return 0
  diff <(echo "$pids_before") <(echo "$pids_after") | sed 's/^/   /'
  return 1
}
phase "every task kept its PID through the upgrade" same_pids
fact "tasks and PIDs kept: $(grep keeper <<<"$pids_after" | awk '{print $2 " pid " $3}' | tr '\n' ';')"

# --- 5. Losing an agent -------------------------------------------------------------------------------

lose_agent2() {
  local dom
  dom=$(ns virsh list --name | grep '_agent2$')
  ns virsh destroy "$dom" >/dev/null
}
agent2_unreachable() { drover nodes show agent2 --json | jq_py 'sys.exit(0 if d["state"] == "unreachable" else 1)'; }
# Every instance that may run on agent1 alone runs there again: /tools/clock, the three
# /shop/hello and /shop/env-ports on agent1, healthy; /shop/cache keeps one instance
# (its UNIQUE hostname constraint leaves the second without a place, and says so).
replaced_on_agent1() {
  drover apps --json >"$run_dir/apps-after.json" 2>/dev/null || return 1
  drover tasks --json >"$run_dir/tasks-after.json" 2>/dev/null || return 1
  jq_py '
apps = {a["app"]["id"]: a for a in d}
tasks = json.load(open(sys.argv[1]))
def on_agent1(app):
    return sum(1 for t in tasks if t["spec"]["definition"].get("labels", {}).get("drover.app") == app
               and t["spec"]["node"] == "agent1" and t["state"] in ("running", "healthy"))
ok = all(on_agent1(app) >= apps[app]["app"]["instances"] for app in apps if app != "/shop/cache")
ok = ok and on_agent1("/shop/cache") >= 1
sys.exit(0 if ok else 1)' "$run_dir/tasks-after.json" <"$run_dir/apps-after.json"
}
lost_at=$SECONDS
phase "virsh destroy agent2" lose_agent2
phase "the master marks agent2 unreachable" until_ok 120 agent2_unreachable
fact "agent2 unreachable after $((SECONDS - lost_at)) s"
phase "agent2's app instances replaced on agent1" until_ok 300 replaced_on_agent1
fact "agent2 lost to every replacement running: $((SECONDS - lost_at)) s"
cp "$run_dir/tasks-after.json" "$run_dir/tasks.json"
fact "instances by app after losing agent2: $(app_placement)"

[ $failed -eq 0 ]
