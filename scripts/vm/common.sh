# shellcheck shell=bash
# Shared settings for the scripts in scripts/vm/. Sourced, never run.
#
# Everything these scripts make lives under two folders, both overridable:
#   DROVER_VM_CACHE  kept between runs: apt archives, the built box, the libvirt
#                    storage pool (the box's base volume), VAGRANT_HOME
#   DROVER_VM_STATE  one run's state: pid files, the namespace's qemu.conf, console logs
# and in one network namespace, DROVER_VM_NS, that has only `lo` and no route out.

DROVER_VM_CACHE=${DROVER_VM_CACHE:-/var/cache/drover-vm}
DROVER_VM_STATE=${DROVER_VM_STATE:-/run/drover-vm}
DROVER_VM_NS=${DROVER_VM_NS:-drover-vm}
# The name the locally built box is added to Vagrant under.
DROVER_LOCAL_BOX=${DROVER_LOCAL_BOX:-drover/debian12-local}
# libvirt storage pool for the VM disks (and the box's base volume).
DROVER_VM_POOL=${DROVER_VM_POOL:-drover-vm}

export VAGRANT_HOME=${VAGRANT_HOME:-$DROVER_VM_CACHE/vagrant.d}
export VAGRANT_CHECKPOINT_DISABLE=1
export LIBVIRT_DEFAULT_URI=qemu:///system
export DROVER_VM_CACHE DROVER_VM_STATE DROVER_VM_NS DROVER_LOCAL_BOX DROVER_VM_POOL

VM_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$VM_SCRIPTS/../.." && pwd)

# Prints a timestamped progress line on stderr.
log() { echo "[$(date -u +%T)] $(basename "$0"): $*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs its arguments inside the namespace (see nsrun).
in_ns() { ip netns exec "$DROVER_VM_NS" "$@"; }
