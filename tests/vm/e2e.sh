#!/usr/bin/env bash
# Issue 6's end-to-end test on real VMs: bare Debian 12 VMs to a running Drover cluster
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
# Some checks wait for pieces still being built; they print WAITING with what they need:
#   - scripts/dist (static builds) and each binary's own `install`: until they exist, the
#     binaries come from DROVER_E2E_BIN_DIR (debug builds, glibc: they run on Debian 12)
#     wrapped by tests/vm/stand-in-dist, which emulates `install`;
#   - a version-bumped second build: the stand-in "upgrade" swaps the binary for one of
#     another checksum but the same version;
#   - drover-scheduler with apps and jobs (and init-cluster): example apps, the periodic
#     job, the load loop, and replacing a lost agent's tasks.
#
# Environment:
#   DROVER_E2E_DIST      a dist/ folder to install (default: scripts/dist's, or stand-ins)
#   DROVER_E2E_DIST2     a second build for upgrade.yml (a version bump)
#   DROVER_E2E_BIN_DIR   where the debug binaries are (default ${CARGO_TARGET_DIR:-target}/debug)
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
export DROVER_BOX=$DROVER_LOCAL_BOX DROVER_AGENTS=2
# 640 MiB and 1 vCPU per VM: three software-emulated VMs fit a 2-core build machine.
export DROVER_VM_MEMORY=${DROVER_VM_MEMORY:-640} DROVER_VM_CPUS=${DROVER_VM_CPUS:-1}
export DROVER_VM_CONSOLE_DIR=$run_dir/console
master=http://192.168.56.10:5050

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
# Records a check that waits for a missing piece.
waiting() {
  log "== $1: WAITING for $2"
  recap+=("$(printf '%-44s %6s  WAITING: %s' "$1" "-" "$2")")
}
print_recap() {
  echo
  echo "== e2e recap (issue 6) =="
  printf '%s\n' "${recap[@]}"
  for line in "${facts[@]}"; do echo "   $line"; done
}
facts=()
fact() { facts+=("$*"); log "$*"; }

cleanup() {
  local rc=$?
  if [ "${DROVER_E2E_KEEP:-}" = 1 ]; then
    log "DROVER_E2E_KEEP=1: leaving the VMs and namespace up (scripts/vm/netns-down ends them)"
  else
    phase "destroy the VMs" scripts/vm/nsrun vagrant destroy -f >/dev/null 2>&1 || true
    phase "stop libvirtd and delete the namespace" scripts/vm/netns-down || true
  fi
  print_recap
  [ $failed -eq 0 ] && [ $rc -eq 0 ] && echo "e2e: passed (see WAITING lines)" || echo "e2e: FAILED"
}

# Runs a command in the namespace with the inventory of the Vagrant cluster.
ns() { scripts/vm/nsrun "$@"; }
playbook() { ns ansible-playbook -i inventory/vagrant -e "drover_dist_dir=$dist" "$@"; }
# Calls the master's API from the controller (inside the namespace) with the token.
api() {
  local method=$1 path=$2
  shift 2
  ns curl -fsS -X "$method" -H "Authorization: Bearer $(cat "$VAGRANT_DOTFILE_PATH/drover-token")" \
    -H 'Content-Type: application/json' "$@" "$master$path"
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

# --- 1. The binaries ---------------------------------------------------------------------------

# A run left up (DROVER_E2E_KEEP=1) or interrupted hard: end it first.
if [ -d "$run_dir/vagrant" ] && ip netns list | grep -qw "$DROVER_VM_NS"; then
  scripts/vm/nsrun vagrant destroy -f >/dev/null 2>&1 || true
fi
scripts/vm/netns-down >/dev/null
rm -rf "$run_dir"
mkdir -p "$run_dir" "$DROVER_VM_CONSOLE_DIR"
has_install() { "$1" install --help >/dev/null 2>&1; }
dist=${DROVER_E2E_DIST:-}
if [ -z "$dist" ] && [ -x scripts/dist ]; then
  phase "build the static binaries (scripts/dist)" scripts/dist
  dist=$repo/dist
fi
stand_in=false
if [ -n "$dist" ]; then
  for b in "$dist"/drover*; do
    file "$b" | grep -qE 'statically linked|static-pie linked' || fact "WARNING: $b is not statically linked"
  done
  has_install "$dist/drover-agent" || stand_in=true
else
  waiting "static builds (scripts/dist)" "scripts/dist (dev-and-dist issue); using debug builds"
  stand_in=true
fi
if $stand_in; then
  waiting "the binaries' own install subcommand" "drover-{master,scheduler,agent} install; using tests/vm/stand-in-dist"
  bin_dir=${DROVER_E2E_BIN_DIR:-${dist:-${CARGO_TARGET_DIR:-target}/debug}}
  bins=()
  for b in drover-master drover-scheduler drover-agent; do
    [ -x "$bin_dir/$b" ] && bins+=("$bin_dir/$b")
  done
  [ ${#bins[@]} -gt 0 ] || die "no binaries in $bin_dir (set DROVER_E2E_BIN_DIR)"
  tests/vm/stand-in-dist "$run_dir/dist1" build1 "${bins[@]}"
  tests/vm/stand-in-dist "$run_dir/dist2" build2 "${bins[@]}"
  dist=$run_dir/dist1
  dist2=${DROVER_E2E_DIST2:-$run_dir/dist2}
else
  dist2=${DROVER_E2E_DIST2:-}
fi
ansible_args=()
if [ ! -x "$dist/drover-scheduler" ]; then
  waiting "drover-scheduler in the cluster" "a drover-scheduler binary; site.yml skips its role"
  ansible_args+=(--skip-tags scheduler)
fi
export DROVER_DIST_DIR=$dist DROVER_ANSIBLE_ARGS="${ansible_args[*]}"

# --- 2. VMs and the cluster ---------------------------------------------------------------------

phase "start libvirtd in the namespace (netns-up)" scripts/vm/netns-up
trap cleanup EXIT
# So that an interrupted run still destroys its VMs (bash runs the EXIT trap on exit).
trap 'exit 143' TERM INT

# Boot all three, then provision once across all of them (more reliable than one
# `vagrant up` whose provisioner runs on the last machine while others still boot).
vagrant_up() { ns vagrant up --provider=libvirt --no-provision 2>&1 | tr '\r' '\n' | grep -v 'Progress:' >"$run_dir/vagrant-up.log"; }
phase "vagrant up --no-provision (3 VMs)" vagrant_up
phase "ansible ping" ns ansible -i inventory/vagrant all -m ansible.builtin.ping -o

site1() { ns vagrant provision "agent$DROVER_AGENTS" >"$run_dir/site1.log" 2>&1; }
phase "site.yml through vagrant provision" site1
recap_lines "$run_dir/site1.log" | sed 's/^/   site.yml 1: /'

fact "nodes: $(api GET /v1/nodes | python3 -c 'import json,sys; print(", ".join(n["name"]+" "+n["state"]+" "+n["version"] for n in json.load(sys.stdin)))')"

waiting "deploy the examples (init-cluster)" "drover-scheduler with apps and jobs, init-cluster"
waiting "every example app healthy on both agents" "drover-scheduler with apps"
waiting "the periodic job has run" "drover-scheduler with jobs"

# --- 3. Idempotence -------------------------------------------------------------------------------

site2() { playbook "${ansible_args[@]}" playbooks/site.yml >"$run_dir/site2.log" 2>&1; }
phase "site.yml again" site2
recap_lines "$run_dir/site2.log" | sed 's/^/   site.yml 2: /'
phase "site.yml again reports changed=0" all_unchanged "$run_dir/site2.log"

check_run() { playbook "${ansible_args[@]}" --check playbooks/site.yml >"$run_dir/site-check.log" 2>&1; }
phase "site.yml --check" check_run
phase "site.yml --check reports changed=0" all_unchanged "$run_dir/site-check.log"

# --- 4. Upgrade -------------------------------------------------------------------------------------

# One long-running task on each agent, straight through the master, whose PID must
# survive the agent's upgrade.
launch_keepers() {
  local a
  for a in agent1 agent2; do
    api POST /v1/tasks -d "{\"node\":\"$a\",\"id\":\"keeper-$a\",\"task\":{\"name\":\"keeper\",\"cmd\":\"sleep 100000\",\"resources\":{\"cpus\":0.05,\"mem\":8}}}" >/dev/null
  done
  for _ in $(seq 1 60); do
    [ "$(keeper_pids | grep -c ' running ')" = 2 ] && return 0
    sleep 2
  done
  keeper_pids
  return 1
}
keeper_pids() {
  api GET '/v1/tasks?active=true' |
    python3 -c 'import json,sys; [print(t["spec"]["id"], t["state"], t.get("pid")) for t in json.load(sys.stdin) if t["spec"]["id"].startswith("keeper-")]'
}
phase "launch a task on each agent" launch_keepers
pids_before=$(keeper_pids | sort)
fact "tasks before the upgrade: $(echo "$pids_before" | tr '\n' ';')"
versions() { api GET /v1/nodes | python3 -c 'import json,sys; print(" ".join(n["name"]+"="+n["version"] for n in json.load(sys.stdin)))'; }
fact "versions before the upgrade: $(versions)"

if [ -n "$dist2" ]; then
  $stand_in && waiting "upgrade to a new version" "a version-bumped build (scripts/dist); the stand-in upgrade keeps the version"
  upgrade() { ns ansible-playbook -i inventory/vagrant -e "drover_dist_dir=$dist2" "${ansible_args[@]}" playbooks/upgrade.yml >"$run_dir/upgrade.log" 2>&1; }
  phase "upgrade.yml (masters, then agents 1 + 25%)" upgrade
  recap_lines "$run_dir/upgrade.log" | sed 's/^/   upgrade.yml: /'
  fact "versions after the upgrade: $(versions)"
  pids_after=$(keeper_pids | sort)
  fact "tasks after the upgrade: $(echo "$pids_after" | tr '\n' ';')"
  same_pids() { [ "$pids_before" = "$pids_after" ]; }
  phase "every task kept its PID through the upgrade" same_pids
else
  waiting "upgrade.yml with a second build" "a version-bumped build (set DROVER_E2E_DIST2)"
fi
waiting "no failed request during the upgrade" "the example web service deployed by the scheduler"

# --- 5. Losing an agent -------------------------------------------------------------------------------

lose_agent2() {
  local dom
  dom=$(ns virsh list --name | grep '_agent2$')
  ns virsh destroy "$dom" >/dev/null
  for _ in $(seq 1 60); do
    api GET /v1/nodes/agent2 | grep -q '"state":"unreachable"' && return 0
    sleep 2
  done
  return 1
}
phase "virsh destroy agent2: master marks it unreachable" lose_agent2
fact "agent2's tasks: $(api GET '/v1/tasks?node=agent2' | python3 -c 'import json,sys; print(", ".join(t["spec"]["id"]+" "+t["state"] for t in json.load(sys.stdin)))')"
waiting "agent2's tasks replaced on agent1" "drover-scheduler with apps"

[ $failed -eq 0 ]
