#!/bin/busybox sh
# d4c VM harness, stage 1: PID 1 on the initramfs.
# runc's pivot_root fails on the initramfs root itself, so copy the root into a tmpfs
# and switch_root there; stage 2 (/d4c-vm/stage2) then sets the machine up.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() {
    echo "d4c-vm: stage 1: $*" >&2
    exit 1 # PID 1 exits: the kernel panics, panic=-1 reboots, QEMU (-no-reboot) stops.
}
# The harness writes this file last: without it the kernel ran out of memory (or hit
# another error) while unpacking the initramfs.
[ -e /d4c-vm/complete ] || fail "the initramfs is incomplete (see 'Initramfs unpacking failed' above)"
mount -t tmpfs -o mode=0755,size=95% root /newroot || fail "cannot mount a tmpfs on /newroot"
for entry in /*; do
    [ "$entry" = /newroot ] && continue
    cp -a "$entry" /newroot/ || fail "cannot copy $entry to the tmpfs"
done
exec switch_root /newroot /d4c-vm/stage2
fail "switch_root failed"
