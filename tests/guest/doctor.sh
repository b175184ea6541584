#!/bin/sh
# Runs inside a QEMU guest (scripts/test.sh passes it to every kernel-test boot, and to some
# end-to-end boots through scripts/guest-e2e.sh with D4C_E2E_DOCTOR): whether
# d4c's blocking is guaranteed on the booted kernel, as `d4c doctor` says (exit code, json,
# the fix), and what `d4c exec --require-sound` and the daemon with `requireSound: true` do
# with it: refuse with one line and load nothing where blocking is not guaranteed, run
# where it is. D4C_EXPECT_SOUND (1 or 0) and D4C_EXPECT_ATTACH (lsm or fmod_ret) say what
# the boot should give. Prints "d4c doctor: N passed, M failed".
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $1"; fi; }
pins=/sys/fs/bpf/d4c
nothing_pinned() { [ ! -e "$pins" ] || [ -z "$(ls "$pins" 2>/dev/null)" ] || { ls -R "$pins"; false; }; }

d4c doctor
json=$(d4c doctor --format json); rc=$?
echo "$json"
check "doctor names the mode $D4C_EXPECT_ATTACH" 'echo "$json" | grep -q "\"mode\":\"$D4C_EXPECT_ATTACH\""'
check "doctor read the preemption model from debugfs" 'echo "$json" | grep -q "\"preemption_source\":\"debugfs sched/preempt\""'

policy=/tmp/doctor-policy.yaml
cat > "$policy" <<'EOF2'
file:
  selectors:
    - name: writes
      operation: [createExecutable]
  responses:
    - match: [writes]
      actions: [alert, block]
EOF2
config=/tmp/doctor-d4c.yaml
cat > "$config" <<EOF2
policyDir: /tmp/doctor-policies
nriSocket: /tmp/doctor-nri.sock
statusSocket: /tmp/doctor-status.sock
metricsAddress: ""
enforcement:
  mode: auto
  requireSound: true
EOF2
mkdir -p /tmp/doctor-policies && cp "$policy" /tmp/doctor-policies/

if [ "$D4C_EXPECT_SOUND" = 1 ]; then
    check "doctor exits 0 where blocking is guaranteed" '[ "$rc" -eq 0 ]'
    check "and says sound" 'echo "$json" | grep -q "\"sound\":true"'
    out=$(d4c exec --require-sound --policy "$policy" --alerts /dev/null -- sh -c 'cp /bin/busybox /tmp/doctor-x' 2>&1)
    rc=$?
    echo "$out"
    check "exec --require-sound runs and blocks" '[ "$rc" -ne 0 ] && echo "$out" | grep -q "Operation not permitted" && [ ! -e /tmp/doctor-x ]'
    d4c nri --config "$config" 2>/tmp/doctor-nri.log &
    daemon=$!
    i=0
    while [ $i -lt 120 ] && ! grep -q "connecting to the runtime" /tmp/doctor-nri.log; do
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.5; i=$((i+1))
    done
    cat /tmp/doctor-nri.log
    check "the daemon with requireSound starts" 'kill -0 "$daemon" 2>/dev/null && grep -q "connecting to the runtime" /tmp/doctor-nri.log'
    check "and says blocking is guaranteed" 'grep -q "blocking is guaranteed on this node" /tmp/doctor-nri.log'
    st=$(d4c status --socket /tmp/doctor-status.sock 2>&1)
    echo "$st"
    check "d4c status says guaranteed" 'echo "$st" | grep -q "^blocking: guaranteed"'
    kill "$daemon"; wait "$daemon"
    d4c unload >/dev/null
else
    check "doctor exits 1 where blocking is not guaranteed" '[ "$rc" -eq 1 ]'
    check "and says not sound" 'echo "$json" | grep -q "\"sound\":false"'
    check "the fix adds bpf to lsm=" 'echo "$json" | grep -q "lsm=[a-z,]*bpf"'
    out=$(d4c exec --require-sound --policy "$policy" --alerts /dev/null -- true 2>&1)
    rc=$?
    echo "$out"
    check "exec --require-sound refuses" '[ "$rc" -eq 125 ]'
    check "with one line naming the reason and the fix" '[ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "not guaranteed.*fix:.*lsm="'
    check "and loads nothing" nothing_pinned
    timeout 60 d4c nri --config "$config" 2>/tmp/doctor-nri.log
    rc=$?
    cat /tmp/doctor-nri.log
    check "the daemon with requireSound refuses to start" '[ "$rc" -eq 1 ]'
    check "naming requireSound and the fix" 'grep -q "requireSound.*fix:.*lsm=" /tmp/doctor-nri.log'
    check "and loads nothing" nothing_pinned
    out=$(d4c exec --policy "$policy" --alerts /dev/null -- true 2>&1)
    echo "$out"
    check "without --require-sound exec runs, warning" 'echo "$out" | grep -q "warning: blocking is NOT guaranteed"'
fi
rm -rf /tmp/doctor-policies "$policy" "$config" /tmp/doctor-x

echo "d4c doctor: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
