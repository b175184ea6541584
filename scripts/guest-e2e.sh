#!/usr/bin/env bash
# Guest end-to-end test: the real `d4c nri` daemon with `enforcement: bpf`, containerd 1.7
# and pods created through CRI, inside a QEMU guest booting a stock Debian kernel
# (tests/tests/guest_containerd.rs).
#
#   scripts/guest-e2e.sh [KERNEL]      # KERNEL: 6.1, 6.12 (default) or newest
#
# On the host it builds the test binary (stripped copy), the two image archives
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
stage=target/guest-e2e
require_bpf=${D4C_REQUIRE_BPF_LSM:-${D4C_REQUIRE_PRIVILEGED:-0}}

skip() {
    if [[ ${D4C_REQUIRE_PRIVILEGED:-0} == 1 || ${D4C_REQUIRE_QEMU:-0} == 1 || ${D4C_REQUIRE_CONTAINERD:-0} == 1 ]]; then
        echo "guest end-to-end ($kernel): 0 passed, 1 failed ($1)"
        exit 1
    fi
    echo "skipping guest end-to-end - $1"
    exit 0
}

command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (scripts/setup.sh installs it)"
tools=()
for b in containerd containerd-shim-runc-v2 ctr runc; do
    p=$(command -v "$b") || skip "no $b (tests/containerd/setup.sh installs containerd 1.7)"
    tools+=(--with "$p")
done
containerd --version | grep -q ' 1\.6' && skip "containerd 1.6 has no NRI (tests/containerd/setup.sh)"
command -v python3 >/dev/null || skip "no python3 (builds the test images)"
[[ -x /bin/busybox ]] || skip "no /bin/busybox (busybox-static)"

echo "[guest-e2e] building the test binary" >&2
bin=$(nice cargo test -p d4c-tests --test guest_containerd --no-run --message-format=json-render-diagnostics \
    | grep '"name":"guest_containerd"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n1)
[[ -n $bin && -x $bin ]] || { echo "guest end-to-end ($kernel): 0 passed, 1 failed (the test binary did not build)"; exit 1; }

mkdir -p "$stage/d4c-containerd"
strip -o "$stage/guest_containerd.tmp" "$bin" && mv -f "$stage/guest_containerd.tmp" "$stage/guest_containerd"
cp tests/containerd/containerd.toml tests/containerd/runc-guard.sh "$stage/d4c-containerd/"
image() { # NAME ENTRYPOINT...: rebuilt when missing or older than mkimage.py or busybox
    local tar
    tar="$stage/d4c-containerd/$(echo "$1" | tr '/:' '__').tar"
    if [[ ! -s $tar || $tar -ot tests/containerd/mkimage.py || $tar -ot /bin/busybox ]]; then
        python3 tests/containerd/mkimage.py "$tar.tmp" "$@" && mv -f "$tar.tmp" "$tar"
    fi
}
image docker.io/d4c/busybox:1 /bin/sh
image docker.io/d4c/pause:1 /bin/sleep 2147483647

echo "[guest-e2e] running in a $kernel guest" >&2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo xtask vm --kernel "$kernel" --timeout 600 \
    --with "$stage/guest_containerd" --with "$stage/d4c-containerd" "${tools[@]}" -- \
    env D4C_CONTAINERD_DIR=/opt/with/d4c-containerd D4C_REQUIRE_BPF_LSM="$require_bpf" \
    /opt/with/guest_containerd --nocapture --test-threads=1 2>&1 | tee "$out" || status=${PIPESTATUS[0]}
if ((status != 0)); then
    # A harness failure or a crash prints no cargo-test summary: count it as one failure.
    grep -q '^test result:' "$out" || echo "guest end-to-end ($kernel): 0 passed, 1 failed (exit status $status)"
    echo "guest end-to-end ($kernel) failed (exit status $status)"
fi
exit "$status"
