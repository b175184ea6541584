#!/bin/sh
# d4c VM harness, stage 2: PID 1 on the tmpfs root.
# Mounts the kernel filesystems, loads modules, runs the command with its output on
# /dev/ttyS1 (the host's stdout), then reports its exit status on the console (ttyS0)
# and powers off. Messages of this script go to the console log only.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/with
export HOME=/root
export TERM=dumb
umask 022

warn() { echo "d4c-vm: warning: $*" >&2; }

fs() { # fs TYPE OPTIONS SOURCE TARGET
    mkdir -p "$4" && mount -t "$1" -o "$2" "$3" "$4" || warn "cannot mount $1 on $4"
}
fs proc nosuid,nodev,noexec proc /proc
fs sysfs nosuid,nodev,noexec sysfs /sys
fs devtmpfs nosuid,mode=0755 devtmpfs /dev
fs devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
fs tmpfs nosuid,nodev,mode=1777 shm /dev/shm
fs cgroup2 nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup
fs securityfs nosuid,nodev,noexec securityfs /sys/kernel/security
fs bpf nosuid,nodev,noexec,mode=0700 bpffs /sys/fs/bpf
fs tracefs nosuid,nodev,noexec tracefs /sys/kernel/tracing
fs debugfs nosuid,nodev,noexec debugfs /sys/kernel/debug
fs tmpfs nosuid,nodev,mode=1777 tmpfs /tmp
fs tmpfs nosuid,nodev,mode=0755 tmpfs /run
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

# Like a systemd host: every controller enabled for the root's children.
for controller in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$controller" >/sys/fs/cgroup/cgroup.subtree_control || warn "cannot enable cgroup controller $controller"
done

hostname d4c-vm
ip link set lo up || warn "cannot bring up lo"
while read -r module; do
    insmod "/d4c-vm/modules/$module" || warn "cannot load $module"
done </d4c-vm/modules/order

. /d4c-vm/env
nonce=$(cat /d4c-vm/nonce)
# Raw: the command's bytes reach the host unchanged (no \n -> \r\n).
stty -F /dev/ttyS1 raw -echo || warn "cannot set /dev/ttyS1 to raw mode"

echo "d4c-vm: running the command at uptime $(cut -d' ' -f1 /proc/uptime)"
cd /
(. /d4c-vm/argv && exec "$@") </dev/null >/dev/ttyS1 2>&1
status=$?

# stty sets the mode with TCSADRAIN: it returns once the command's output has left the
# UART, so none of it is lost when the machine powers off.
stty -F /dev/ttyS1 raw -echo
dmesg -n 1
echo "D4C-VM-EXIT $nonce $status $(cut -d' ' -f1 /proc/uptime)"
stty -F /dev/ttyS0 -echo
poweroff -f
reboot -f
