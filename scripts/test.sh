#!/usr/bin/env bash
# Runs the whole d4c test suite:
#   formatting and lints (rustfmt, clippy with -D warnings, the workspace and ebpf/);
#   (a) unit and integration tests, with the 128,000-case property test;
#   (b) kernel tests, the `d4c exec` scenario and `d4c doctor`, run inside QEMU guests
#       booting Debian's 6.1, 6.12 and newest kernels, each booted once with BPF LSM active
#       and once without `bpf` in `lsm=` (fmod_ret mode) (this machine's kernel may not load
#       LSM programs); `d4c doctor` again at the default preemption, and with the command
#       line install/node-prep/ writes;
#   (c) end-to-end tests against a real containerd on this host, and in the guests (the
#       daemon binary, and the shipped DaemonSet's container spec with the d4c image);
#   the README's first command (scripts/demo.sh) in a 6.12 guest;
#   and a bounded fuzzing run. Tiers (b) and (c) skip with a reason where the machine lacks
#   what they need, and fail instead when D4C_REQUIRE_PRIVILEGED=1 (CI sets it), which
#   sets the per-tier variables D4C_REQUIRE_QEMU, D4C_REQUIRE_CONTAINERD (host) and
#   D4C_REQUIRE_BPF_LSM (inside the guests).
#
#   scripts/test.sh                      # everything
#   D4C_FUZZ_SECONDS=0 scripts/test.sh   # without fuzzing
#   D4C_KERNELS="6.12" scripts/test.sh   # guest tests on one kernel
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Each step's header says when it started (minutes:seconds since the suite began), so a
# slow step shows in any log.
step() { printf '\n==> [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

if [[ ${D4C_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
    export D4C_REQUIRE_QEMU=1 D4C_REQUIRE_CONTAINERD=1
fi

# The LSM list of Ubuntu 22.04/24.04 (no `bpf`): guests booted with it get fmod_ret.
NO_BPF_LSM="lsm=landlock,lockdown,yama,integrity,apparmor"
export NO_BPF_LSM
status=0
step "cargo fmt --check (workspace and ebpf/)"
if cargo fmt --all -- --check >/dev/null && (cd ebpf && cargo fmt -- --check >/dev/null); then
    echo "fmt: 1 passed, 0 failed" | tee -a "$log"
else
    echo "fmt: 0 passed, 1 failed (run cargo fmt --all, and in ebpf/)" | tee -a "$log"
    status=1
fi

step "cargo clippy -D warnings (workspace, pedantic as Cargo.toml declares; and ebpf/)"
if cargo clippy --workspace --all-targets -- -D warnings \
    && (cd ebpf && RUSTC_BOOTSTRAP=1 cargo clippy --release --target bpfel-unknown-none -Z build-std=core -- -D warnings); then
    echo "clippy: 1 passed, 0 failed" | tee -a "$log"
else
    echo "clippy: 0 passed, 1 failed (see the warnings above)" | tee -a "$log"
    status=1
fi

step "cargo test --workspace (tiers a and c; tier b skips here and runs in the guests below)"
# `|| status=1`: a failing tier is recorded and the next tiers still run (set -e would stop).
cargo test --workspace --no-fail-fast 2>&1 | tee -a "$log" || status=1

step "kernel tests in QEMU guests (tier b)"
if ! command -v qemu-system-x86_64 >/dev/null; then
    [[ ${D4C_REQUIRE_QEMU:-0} == 1 ]] && { echo "kernel tests: 0 passed, 1 failed (no qemu-system-x86_64)" | tee -a "$log"; status=1; } \
        || echo "skipping kernel tests - no qemu-system-x86_64 (scripts/setup.sh installs it)"
else
    kernel_bin=$(cargo test -p d4c-tests --test kernel --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n1)
    # Per kernel, two boots: BPF LSM active (the Debian default), and Ubuntu's `lsm=` list
    # without `bpf`, where d4c attaches as fmod_ret. Each boot runs the kernel tests and
    # then the `d4c exec` scenario. `preempt=full`: a program run can be preempted anywhere,
    # so the tests meet the interleavings of preemptible kernels (kernel_routes/preempted.rs).
    for k in ${D4C_KERNELS:-6.1 6.12 newest}; do
        for mode in lsm fmod_ret; do
            append="preempt=full"
            [[ $mode == fmod_ret ]] && append="$NO_BPF_LSM preempt=full"
            # BPF LSM is guaranteed on these kernels (6.1.54+); fmod_ret with preempt=full
            # is not (tests/guest/doctor.sh).
            sound=1
            [[ $mode == fmod_ret ]] && sound=0
            echo "--- kernel $k, $mode"
            if ! cargo xtask vm --kernel "$k" --append "$append" --with "$kernel_bin" \
                --with config/examples/block-drift.yaml --with tests/guest/exec-scenario.sh \
                --with tests/guest/doctor.sh -- \
                env D4C_REQUIRE_BPF_LSM="${D4C_REQUIRE_PRIVILEGED:-0}" D4C_EXPECT_ATTACH="$mode" \
                D4C_EXPECT_SOUND="$sound" sh -c \
                '"/opt/with/$1" --test-threads=1; a=$?; /opt/with/exec-scenario.sh; b=$?; /opt/with/doctor.sh; c=$?; [ $a -ne 0 ] && exit $a; [ $b -ne 0 ] && exit $b; exit $c' \
                sh "$(basename "$kernel_bin")" 2>&1 | tee -a "$log"; then
                echo "kernel tests, the d4c exec scenario or d4c doctor on $k ($mode) failed"
                status=1
            fi
        done
    done
fi

# The command line install/node-prep/add-bpf-lsm.sh writes into Debian's GRUB defaults on
# a node without `bpf` in its `lsm=`: the 6.12 BPF LSM end-to-end boot below boots with it.
# The boots the kernel tests above do not cover also run tests/guest/doctor.sh there, in
# the end-to-end boots: fmod_ret at each kernel's default preemption (6.12: voluntary,
# guaranteed; the newest: lazy, not), and 6.12 with node preparation's line (BPF LSM).
step "node preparation: the command line add-bpf-lsm.sh writes"
prep=$(mktemp -d)
cp -a tests/fixtures/grub/debian-12/. "$prep/"
mkdir -p "$prep/sys/kernel/security" "$prep/run"
echo "capability,${NO_BPF_LSM#lsm=}" >"$prep/sys/kernel/security/lsm"
prepared=""
if install/node-prep/add-bpf-lsm.sh --root "$prep" --no-update-grub; then
    prepared=$(sh -c '. "$1/etc/default/grub"; echo "$GRUB_CMDLINE_LINUX"' sh "$prep")
    echo "node-prep wrote GRUB_CMDLINE_LINUX=\"$prepared\""
else
    echo "node-prep: 0 passed, 1 failed (add-bpf-lsm.sh on Debian 12's GRUB defaults)" | tee -a "$log"
    status=1
fi
rm -rf "$prep"

# containerd 2.x (Debian sid's, unpacked into the cache by `cargo xtask containerd`,
# never installed) next to the host's 1.7: first on PATH for the runs below that use it.
step "containerd 2.x for the end-to-end tests (cargo xtask containerd)"
ctd2=""
if ctd2=$(cargo xtask containerd) && [[ -x $ctd2/containerd ]]; then
    echo "containerd 2.x: $("$ctd2/containerd" --version)"
elif [[ ${D4C_REQUIRE_CONTAINERD:-0} == 1 ]]; then
    echo "containerd 2.x: 0 passed, 1 failed (cargo xtask containerd)" | tee -a "$log"
    ctd2=""
    status=1
else
    echo "skipping the containerd 2.x runs - cargo xtask containerd failed (it needs root and Debian's package lists)"
    ctd2=""
fi

step "host end-to-end against containerd 2.x (the 1.7 runs are in cargo test above)"
if [[ -n $ctd2 ]]; then
    PATH="$ctd2:$PATH" cargo test -p d4c-tests --test containerd_nri --test containerd_daemon 2>&1 \
        | tee -a "$log" || status=1
fi

# The image the manifests name: built from the release binary, stripped, tagged with the
# package version, its size and digest printed; built twice, the same digest (reproducible).
step "the d4c image (install/image/build.py)"
image_dir=$(mktemp -d)
if release=$(cargo build --release -p d4c --message-format=json-render-diagnostics \
        | grep -o '"executable":"[^"]*/d4c"' | cut -d'"' -f4 | tail -n1) \
    && python3 install/image/build.py "$image_dir/a.tar" "$release" | tee "$image_dir/a.out" \
    && python3 install/image/build.py "$image_dir/b.tar" "$release" >"$image_dir/b.out" \
    && [[ $(grep -o 'digest .*' "$image_dir/a.out") == $(grep -o 'digest .*' "$image_dir/b.out") ]] \
    && grep -q "d4c:$("$release" --version | cut -d' ' -f2) " "$image_dir/a.out"; then
    echo "image: 1 passed, 0 failed" | tee -a "$log"
else
    echo "image: 0 passed, 1 failed (install/image/build.py: not built, or not reproducible)" | tee -a "$log"
    status=1
fi
rm -rf "$image_dir"

# Per kernel: containerd 1.7 with BPF LSM active, and containerd 2.x in a guest without
# `bpf` in `lsm=` (fmod_ret). The pairs cover each attach mode and each containerd version
# on every kernel. guest_containerd and guest_unregistered run in every boot; the DaemonSet
# and its uninstall (guest_daemonset) in every BPF LSM boot and in 6.12's fmod_ret one.
# d4c doctor runs first in 6.12's two boots and the newest's fmod_ret one (above).
step "guest end-to-end: containerd + d4c nri enforcing in QEMU guests"
for k in ${D4C_KERNELS:-6.1 6.12 newest}; do
    lsm_env=() fmod_env=(D4C_GUEST_TESTS="guest_containerd guest_unregistered")
    case $k in
        6.12) lsm_env=(D4C_E2E_APPEND="$NO_BPF_LSM $prepared" D4C_E2E_DOCTOR=1)
              fmod_env=(D4C_E2E_DOCTOR=1) ;;
        newest) fmod_env+=(D4C_E2E_DOCTOR=0) ;;
    esac
    [[ -z $prepared ]] && lsm_env=()
    env "${lsm_env[@]}" scripts/guest-e2e.sh "$k" 2>&1 | tee -a "$log" || status=1
    if [[ -n $ctd2 ]]; then
        env PATH="$ctd2:$PATH" "${fmod_env[@]}" scripts/guest-e2e.sh "$k" fmod_ret 2>&1 \
            | tee -a "$log" || status=1
    fi
done

step "the README's first command: scripts/demo.sh (containerd + d4c nri + drifting pods, 6.12 guest)"
rc=0
scripts/demo.sh || rc=$?
if ((rc == 0)); then
    echo "demo: 1 passed, 0 failed" | tee -a "$log"
elif ((rc == 2)) && [[ ${D4C_REQUIRE_PRIVILEGED:-0} != 1 ]]; then
    echo "skipping the demo - a prerequisite is missing (see above)"
else
    echo "demo: 0 passed, 1 failed (exit status $rc)" | tee -a "$log"
    status=1
fi

fuzz_seconds=${D4C_FUZZ_SECONDS:-60}
if ((fuzz_seconds > 0)); then
    step "fuzzing parse+validate+compile for ${fuzz_seconds}s"
    corpus=${D4C_CACHE_DIR:-target}/fuzz-corpus
    mkdir -p "$corpus"
    if RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir policy/fuzz parse_compile "$corpus" config/policies config/examples \
        -- -max_total_time="$fuzz_seconds" -print_final_stats=1 2>&1 | tail -n 15; then
        echo "fuzz: 1 passed, 0 failed" | tee -a "$log"
    else
        echo "fuzz: 0 passed, 1 failed" | tee -a "$log"
        status=1
    fi
fi

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
step "summary"
echo "total: ${passed} passed, ${failed} failed, in $((SECONDS / 60)) min $((SECONDS % 60)) s"
exit "$status"
