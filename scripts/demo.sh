#!/usr/bin/env bash
# The main job, on a fresh machine: install what d4c needs, build it, and watch it stop
# drift in a real pod. A private containerd 1.7 with NRI, the `d4c nri` daemon with
# the default policy set (config/policies/) + config/examples/block-drift-production.yaml,
# and two pods that try to drop a binary and run it (tests/examples/pod_demo.rs): the copy is
# refused by the kernel (EPERM) in namespace production and allowed with an alert in dev;
# the alert documents are printed, then everything is removed.
#
#   scripts/demo.sh                    # in a QEMU guest booting Debian's 6.12 kernel
#   D4C_KERNEL=newest scripts/demo.sh  # another guest kernel: 6.1, 6.12 or newest
#   scripts/demo.sh --here             # on this host (root, BPF LSM): loads d4c's programs
#                                      # into this kernel and runs a private containerd
#
# Without --here it runs in a guest, because the machines we build on refuse BPF LSM
# programs; nothing is loaded into this host's kernel. Exit status: 0 when production
# refused and dev allowed, 1 otherwise, 2 when a prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

here=0
for a in "$@"; do
    case $a in
        --here) here=1 ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo: unknown argument $a (see --help)" >&2; exit 2 ;;
    esac
done
# Each step's time, printed as it ends and summed up at the end.
started=$SECONDS step_start=$SECONDS step_name="" steps=()
say() { printf '[demo %d:%02d] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }
fail() { say "$*"; exit 2; }
step() {
    [[ -z $step_name ]] || steps+=("$step_name $((SECONDS - step_start)) s")
    step_name=$1 step_start=$SECONDS
}

step "set-up"
say "installing what the demo needs (scripts/setup.sh --demo; checks first, quick when done)"
scripts/setup.sh --demo
source scripts/lib/containerd-stage.sh
stage=target/demo
# The default set (its test files left out) and one example beside it, as config/README.md says.
policies=()
for p in config/policies/*.yaml; do [[ $p == *.test.yaml ]] || policies+=("$p"); done
policies+=(config/examples/block-drift-production.yaml)

step "build"
# One release build serves both: the guest harness would build d4c in release anyway, and
# the demo program shares its dependencies.
say "building d4c and the demo program in release (the first build takes a few minutes)"
nice cargo build --release -q -p d4c
bin=$(cargo_binary pod_demo build --release -q -p d4c-tests --example pod_demo)
[[ -n $bin && -x $bin ]] || fail "the demo program did not build"
step "containerd"
say "staging containerd, runc and the busybox image"
stage_containerd "$stage" || fail "$stage_missing"

if ((here)); then
    [[ $(id -u) -eq 0 ]] || fail "--here needs root"
    grep -qw bpf /sys/kernel/security/lsm 2>/dev/null \
        || fail "--here: this kernel has no BPF LSM (/sys/kernel/security/lsm lacks bpf); run without --here to use a guest"
    say "running on this host"
    args=()
    for p in "${policies[@]}"; do args+=(--policy "$p"); done
    exec env D4C_CONTAINERD_DIR="$stage/d4c-containerd" "$bin" "${args[@]}"
fi

command -v qemu-system-x86_64 >/dev/null || fail "no qemu-system-x86_64 (scripts/setup.sh installs it)"
strip -o "$stage/pod_demo.tmp" "$bin" && mv -f "$stage/pod_demo.tmp" "$stage/pod_demo"
kernel=${D4C_KERNEL:-6.12}
withs=(--with "$stage/pod_demo" --with "$stage/d4c-containerd" "${tools[@]}")
args=()
for p in "${policies[@]}"; do
    withs+=(--with "$p")
    args+=(--policy "/opt/with/$(basename "$p")")
done
step "guest"
say "booting Debian's $kernel kernel in a QEMU guest with the fresh d4c (the kernel is fetched once; about a minute)"
status=0
cargo xtask vm --kernel "$kernel" --timeout 600 "${withs[@]}" -- \
    env D4C_CONTAINERD_DIR=/opt/with/d4c-containerd /opt/with/pod_demo "${args[@]}" || status=$?
step ""
say "done in $((SECONDS - started)) s: ${steps[*]/%/;}"
exit "$status"
