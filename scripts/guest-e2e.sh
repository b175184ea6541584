#!/usr/bin/env bash
# Guest end-to-end test: the real `d4c nri` daemon with `enforcement: bpf`, containerd 1.7
# and pods created through CRI, inside a QEMU guest booting a stock Debian kernel
# (tests/tests/guest_containerd.rs).
#
#   scripts/guest-e2e.sh [KERNEL] [MODE]   # KERNEL: 6.1, 6.12 (default) or newest
#                                          # MODE: lsm (default) or fmod_ret
#
# Three tests: guest_containerd.rs (the daemon binary), guest_daemonset.rs (the shipped
# DaemonSet's container spec with the d4c image, through CRI, then the uninstall) and
# guest_unregistered.rs (containers started while no daemon runs). The containerd, its
# shim, ctr and runc are the ones first on PATH (scripts/test.sh puts containerd 2.x there
# for the fmod_ret run). MODE fmod_ret boots the guest with Ubuntu's `lsm=` list (no
# `bpf`), where the daemon's `auto` attaches as fmod_ret; it runs the same three.
# On the host it builds the test binaries (stripped copies), the d4c image
# (install/image/build.py), the two test image archives
# (tests/containerd/mkimage.py: the guest has no python3) and collects containerd,
# containerd-shim-runc-v2, ctr and runc (tests/containerd/setup.sh installs them); then
# `cargo xtask vm` runs the test with everything under /opt/with. Exit status: the test's
# (non-zero when it fails; 125 when the harness fails); the cargo-test summary line is
# printed, or `guest end-to-end (KERNEL): 0 passed, 1 failed (...)` when there is none.
# Without qemu or containerd it prints `skipping guest end-to-end - <reason>` and exits 0,
# unless D4C_REQUIRE_PRIVILEGED, D4C_REQUIRE_QEMU or D4C_REQUIRE_CONTAINERD is 1 (then it
# fails). Inside the guest D4C_REQUIRE_BPF_LSM is ${D4C_REQUIRE_BPF_LSM:-$D4C_REQUIRE_PRIVILEGED}
# (default 0: the test skips without BPF LSM).
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=${1:-6.12}
mode=${2:-lsm}
case $mode in
    lsm) append=""; bins="guest_containerd guest_daemonset guest_unregistered" ;;
    fmod_ret) append=${NO_BPF_LSM:-lsm=landlock,lockdown,yama,integrity,apparmor}; bins="guest_containerd guest_daemonset guest_unregistered" ;;
    *) echo "guest-e2e: MODE is lsm or fmod_ret, not $mode" >&2; exit 2 ;;
esac
bins=${D4C_GUEST_TESTS:-$bins}   # a subset, for a quicker run by hand
# More kernel parameters for the boot (scripts/test.sh: the command line node preparation
# writes), and tests/guest/doctor.sh run first in the same boot when D4C_E2E_DOCTOR says
# whether blocking is guaranteed there (1 or 0).
append="$append${D4C_E2E_APPEND:+ $D4C_E2E_APPEND}"
doctor=${D4C_E2E_DOCTOR:-}
stage=target/guest-e2e
require_bpf=${D4C_REQUIRE_BPF_LSM:-${D4C_REQUIRE_PRIVILEGED:-0}}

skip() {
    if [[ ${D4C_REQUIRE_PRIVILEGED:-0} == 1 || ${D4C_REQUIRE_QEMU:-0} == 1 || ${D4C_REQUIRE_CONTAINERD:-0} == 1 ]]; then
        echo "guest end-to-end ($kernel, $mode): 0 passed, 1 failed ($1)"
        exit 1
    fi
    echo "skipping guest end-to-end - $1"
    exit 0
}

command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (scripts/setup.sh installs it)"
source scripts/lib/containerd-stage.sh
stage_containerd "$stage" || skip "$stage_missing"

echo "[guest-e2e] building the test binaries and the d4c image" >&2
for t in guest_containerd guest_daemonset guest_unregistered; do
    bin=$(cargo_binary "$t" test -p d4c-tests --test "$t" --no-run)
    [[ -n $bin && -x $bin ]] || { echo "guest end-to-end ($kernel, $mode): 0 passed, 1 failed (the test binary $t did not build)"; exit 1; }
    strip -o "$stage/$t.tmp" "$bin" && mv -f "$stage/$t.tmp" "$stage/$t"
done
# The image the DaemonSet test runs: the release d4c that `cargo xtask vm` also installs.
d4c_release=$(cargo_binary d4c build --release -p d4c)
[[ -n $d4c_release && -x $d4c_release ]] || { echo "guest end-to-end ($kernel, $mode): 0 passed, 1 failed (d4c did not build)"; exit 1; }
version=$("$d4c_release" --version | cut -d' ' -f2)
rm -f "$stage"/d4c-containerd/docker.io_library_d4c_*.tar
python3 install/image/build.py "$stage/d4c-containerd/docker.io_library_d4c_$version.tar" "$d4c_release" \
    || { echo "guest end-to-end ($kernel, $mode): 0 passed, 1 failed (the d4c image did not build)"; exit 1; }
rm -rf "$stage/install" && mkdir -p "$stage/install" && cp -r install/kubernetes install/uninstall "$stage/install/"

echo "[guest-e2e] running in a $kernel guest ($mode, $(containerd --version | cut -d' ' -f2-3))" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# The test binaries in one boot; the exit status is the first failure's.
cargo xtask vm --kernel "$kernel" --append "$append" --timeout 900 \
    --with "$stage/guest_containerd" --with "$stage/guest_daemonset" --with "$stage/guest_unregistered" \
    --with "$stage/d4c-containerd" --with tests/guest/doctor.sh \
    --with "$stage/install" "${tools[@]}" -- \
    env D4C_CONTAINERD_DIR=/opt/with/d4c-containerd D4C_INSTALL_DIR=/opt/with/install \
    D4C_REQUIRE_BPF_LSM="$require_bpf" D4C_EXPECT_ATTACH="$mode" D4C_EXPECT_SOUND="$doctor" sh -c \
    'a=0; if [ -n "$D4C_EXPECT_SOUND" ]; then /opt/with/doctor.sh || a=1; fi
     for t in "$@"; do /opt/with/$t --nocapture --test-threads=1 || { r=$?; [ $a -eq 0 ] && a=$r; }; done; exit $a' \
    sh $bins 2>&1 | tee "$out" || status=${PIPESTATUS[0]}
if ((status != 0)); then
    # A harness failure or a crash prints no cargo-test summary for that binary: count it
    # as one failure (one summary is due per binary).
    (($(grep -c '^test result:' "$out") >= $(wc -w <<<"$bins"))) || echo "guest end-to-end ($kernel, $mode): 0 passed, 1 failed (exit status $status)"
    echo "guest end-to-end ($kernel, $mode) failed (exit status $status)"
fi
exit "$status"
