#!/usr/bin/env bash
# The main job, on a fresh machine: install what d4c needs, build it, and show the kernel
# stopping drift. This machine's kernel may refuse BPF LSM programs, so the demo boots a
# stock Debian kernel in a QEMU guest (`cargo xtask vm`) and runs `d4c exec` there:
#   1. the embedded default policy: copying an executable is allowed and raises an alert;
#   2. config/policies/block-drift.yaml: the same copy is refused (EPERM) with an alert.
# On a host with BPF LSM, run `sudo d4c exec --policy config/policies/block-drift.yaml --
# sh -c 'cp /bin/ls /tmp/x && /tmp/x'` directly instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
kernel=${D4C_KERNEL:-6.12}
echo "[demo] booting Debian's $kernel kernel in a guest with the freshly built d4c"
cargo xtask vm --kernel "$kernel" --with config/policies/block-drift.yaml -- sh -c '
echo "== 1. embedded default policy (alert only): cp /bin/busybox /tmp/x"
d4c exec --alerts /tmp/default.ndjson -- sh -c "cp /bin/busybox /tmp/x && echo copied: allowed"
echo "alert document:"; cat /tmp/default.ndjson
echo
echo "== 2. block-drift.yaml: cp /bin/busybox /tmp/y"
d4c exec --policy /opt/with/block-drift.yaml --alerts /tmp/block.ndjson -- sh -c "cp /bin/busybox /tmp/y && echo copied" \
    || echo "=> refused by the kernel (exit $?)"
echo "alert document:"; cat /tmp/block.ndjson
'
