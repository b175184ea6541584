#!/bin/sh
# Runs inside a QEMU guest (scripts/test.sh passes it with `cargo xtask vm --with`): the
# user-facing `d4c exec` scenario on the blocking example policy. A copy of an executable
# is refused with EPERM and raises exactly one alert naming the file and the process; the
# same copy outside d4c works; `d4c status` and `d4c unload` behave; with
# D4C_EXPECT_ATTACH (lsm or fmod_ret) `d4c status` names that mode, and in a guest without
# BPF LSM `--enforcement lsm` fails with one line. Prints
# "d4c exec scenario: N passed, M failed".
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $1"; fi; }

policy=/opt/with/block-drift.yaml
alerts=/tmp/alerts.ndjson
out=$(d4c exec --policy "$policy" --alerts "$alerts" -- sh -c 'cp /bin/busybox /tmp/x && /tmp/x echo copied' 2>&1)
rc=$?
echo "$out"
check "the command fails" '[ "$rc" -ne 0 ]'
check "cp reports EPERM" 'echo "$out" | grep -q "Operation not permitted"'
check "the file was not created" '[ ! -e /tmp/x ]'
check "exactly one alert" '[ "$(wc -l < "$alerts")" -eq 1 ]'
check "the alert names the file" 'grep -q "\"path\":\"/tmp/x\"" "$alerts"'
check "the alert names the process" 'grep -q "\"name\":\"cp\"" "$alerts"'
check "the alert says denied" 'grep -q "\"denied\"" "$alerts"'
cat "$alerts"

out=$(d4c exec --policy "$policy" --alerts /dev/null -- sh -c 'exit 7' 2>&1)
check "exit status passes through" '[ $? -eq 7 ]'

cp /bin/busybox /tmp/true && /tmp/true
check "unmanaged processes are unaffected" '[ $? -eq 0 ]'

# A process is decided as the file it runs and as the name it was started by: /bin/sh
# (a symlink to busybox in this guest, as on Alpine) is `sh` for `processName: [sh]`, and
# `d4c eval` answers what the kernel does.
cat > /tmp/shells.yaml <<'EOF2'
process:
  selectors:
    - name: shells
      operation: [exec]
      processName: [sh]
  responses:
    - match: [shells]
      actions: [alert, block]
EOF2
ev=$(d4c eval --policy /tmp/shells.yaml --process-op exec --executable /bin/sh)
echo "$ev"
check "eval: /bin/sh is a shell" 'echo "$ev" | grep -q "\"block\""'
out=$(d4c exec --policy /tmp/shells.yaml --alerts /tmp/shells.ndjson -- /bin/sh -c true 2>&1)
rc=$?
echo "$out"
check "the kernel refuses /bin/sh too" '[ "$rc" -eq 125 ] && echo "$out" | grep -q "Operation not permitted"'
check "the alert says it was started as /bin/sh" 'grep -q "\"started_as\":\"/bin/sh\"" /tmp/shells.ndjson'
check "and names the file it is" 'grep -q "\"executable\":\"/bin/busybox\"" /tmp/shells.ndjson'
cat /tmp/shells.ndjson

# The attach mode the guest was booted for (scripts/test.sh sets D4C_EXPECT_ATTACH).
if [ -n "$D4C_EXPECT_ATTACH" ]; then
    out=$(d4c exec --policy "$policy" --alerts /dev/null -- d4c status 2>&1)
    echo "$out"
    check "d4c status says $D4C_EXPECT_ATTACH" 'echo "$out" | grep -q "programs attached ($D4C_EXPECT_ATTACH):"'
    if [ "$D4C_EXPECT_ATTACH" = fmod_ret ]; then
        out=$(d4c exec --enforcement lsm --policy "$policy" -- true 2>&1)
        rc=$?
        echo "$out"
        check "--enforcement lsm fails without BPF LSM" '[ "$rc" -eq 125 ]'
        check "with one line naming the reason" '[ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "BPF LSM is not available"'
    fi
fi

check "nothing stays loaded after exec" '[ ! -e /sys/fs/bpf/d4c ] || [ -z "$(ls /sys/fs/bpf/d4c 2>/dev/null)" ]'

echo "d4c exec scenario: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
