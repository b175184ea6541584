#!/bin/sh
# Adds `bpf` to the kernel's `lsm=` list on a GRUB-based node (Debian, Ubuntu), so that d4c
# attaches as BPF LSM, where its blocking is guaranteed (`d4c doctor` explains why).
#
#   add-bpf-lsm.sh [--root DIR] [--no-update-grub] [--dry-run]
#
# Where a GRUB_CMDLINE_LINUX or GRUB_CMDLINE_LINUX_DEFAULT assignment (in
# /etc/default/grub or /etc/default/grub.d/*.cfg) already has `lsm=`, `bpf` is added at the
# end of that list, keeping its order. Otherwise `lsm=` with the active list
# (/sys/kernel/security/lsm, `capability` left out: it is always first) and `bpf` is added
# to GRUB_CMDLINE_LINUX, in the last file that sets it. Each changed file is copied to
# FILE.d4c-backup-TIMESTAMP first. Then `update-grub` (or `grub[2]-mkconfig`) writes the boot
# configuration and /run/reboot-required asks the node's reboot coordinator (kured and
# the like) for a reboot. It never reboots by itself, and a second run changes nothing.
#
# Exit status: 0 when done or nothing was needed, 1 when the node cannot be changed this
# way (no GRUB, a value it cannot edit), 2 on a bad argument.
set -eu

root=/
update=1
dry=0
while [ $# -gt 0 ]; do
    case $1 in
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --no-update-grub) update=0; shift ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "add-bpf-lsm: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
R=${root%/}

say() { echo "add-bpf-lsm: $*"; }
die() { echo "add-bpf-lsm: $*" >&2; exit 1; }

grub=$R/etc/default/grub
[ -f "$grub" ] || die "no /etc/default/grub: not a GRUB-based node; see install/node-prep/README.md for Flatcar, Bottlerocket, Talos and Azure Linux"

# The files GRUB's configuration reads, in the order it reads them.
files=$grub
for f in "$R"/etc/default/grub.d/*.cfg; do
    [ -f "$f" ] && files="$files
$f"
done

# Prints the `lsm=` lists of the GRUB_CMDLINE_LINUX* assignments of a file, one per line.
lsm_lists() {
    awk '
        /^[ \t]*(export[ \t]+)?GRUB_CMDLINE_LINUX(_DEFAULT)?=/ {
            line = $0
            while (match(line, /(^|[ \t"'\''=])lsm=[^ \t"'\'']*/)) {
                v = substr(line, RSTART, RLENGTH)
                sub(/^.*lsm=/, "", v)
                print v
                line = substr(line, RSTART + RLENGTH)
            }
        }' "$1"
}

has_bpf() { case ",$1," in *,bpf,*) return 0 ;; *) return 1 ;; esac; }

active=$(cat "$R/sys/kernel/security/lsm" 2>/dev/null || true)

# What needs changing: files whose lsm= lists lack bpf; or, where no file sets lsm=, the
# file whose GRUB_CMDLINE_LINUX gets one.
found=0
todo=""
old_ifs=$IFS
IFS='
'
for f in $files; do
    for l in $(lsm_lists "$f"); do
        found=1
        has_bpf "$l" || todo="$todo
$f"
    done
done
IFS=$old_ifs

if [ $found = 0 ] && has_bpf "$active"; then
    say "bpf is already an active LSM: nothing to do"
    exit 0
fi
if [ $found = 0 ]; then
    [ -n "$active" ] || die "cannot read the active LSM list ($R/sys/kernel/security/lsm): mount securityfs, or add lsm=...,bpf to GRUB_CMDLINE_LINUX by hand"
    list=$(echo "$active" | tr ',' '\n' | grep -v -x -e capability -e '' | tr '\n' ',')
    list=${list%,}
    has_bpf "$list" || list="$list,bpf"
    # The last file that assigns GRUB_CMDLINE_LINUX without building on the earlier value
    # decides it; add there.
    target=$grub
    IFS='
'
    for f in $files; do
        if grep -Eq '^[[:blank:]]*(export[[:blank:]]+)?GRUB_CMDLINE_LINUX=' "$f" \
            && ! grep -Eq '^[[:blank:]]*(export[[:blank:]]+)?GRUB_CMDLINE_LINUX=.*\$\{?GRUB_CMDLINE_LINUX([^_A-Za-z0-9]|$)' "$f"; then
            target=$f
        fi
    done
    IFS=$old_ifs
    todo=$target
fi

todo=$(echo "$todo" | grep -v -x '' | sort -u || true)
if [ -z "$todo" ]; then
    if has_bpf "$active"; then
        say "bpf is already an active LSM: nothing to do"
    else
        say "bpf is already in lsm= of the GRUB configuration: nothing to change; the node has not booted with it yet (reboot it)"
    fi
    exit 0
fi

# Edits one file: adds bpf to each lsm= list (mode "add"), or lsm=LIST to the last
# GRUB_CMDLINE_LINUX assignment (mode "append").
edit() { # edit FILE MODE LIST
    awk -v mode="$2" -v list="$3" '
        function addbpf(line,    out, v) {
            out = ""
            while (match(line, /(^|[ \t"'\''=])lsm=[^ \t"'\'']*/)) {
                v = substr(line, RSTART, RLENGTH)
                if ((("," substr(v, index(v, "lsm=") + 4) ",") !~ /,bpf,/))
                    v = v ",bpf"
                out = out substr(line, 1, RSTART - 1) v
                line = substr(line, RSTART + RLENGTH)
            }
            return out line
        }
        { lines[NR] = $0 }
        /^[ \t]*(export[ \t]+)?GRUB_CMDLINE_LINUX=/ { last = NR }
        END {
            if (mode == "append" && !last) {
                lines[++NR] = "GRUB_CMDLINE_LINUX=\"lsm=" list "\""
            }
            for (i = 1; i <= NR; i++) {
                line = lines[i]
                if (mode == "add" && line ~ /^[ \t]*(export[ \t]+)?GRUB_CMDLINE_LINUX(_DEFAULT)?=/) {
                    line = addbpf(line)
                } else if (mode == "append" && i == last) {
                    eq = index(line, "=")
                    head = substr(line, 1, eq)
                    val = substr(line, eq + 1)
                    q = substr(val, 1, 1)
                    if (q == "\"" || q == "'\''") {
                        body = substr(val, 2)
                        end = index(body, q)
                        if (!end) { print "multi-line" > "/dev/stderr"; exit 3 }
                        inner = substr(body, 1, end - 1)
                        rest = substr(body, end + 1)
                        sep = (inner ~ /[^ \t]$/) ? " " : ""
                        line = head q inner sep "lsm=" list q rest
                    } else {
                        split(val, parts, /[ \t]#/)
                        inner = parts[1]
                        sep = (inner != "") ? " " : ""
                        line = head "\"" inner sep "lsm=" list "\""
                    }
                }
                print line
            }
        }' "$1"
}

stamp=$(date +%Y%m%d%H%M%S)
for f in $todo; do
    if [ $found = 1 ]; then mode=add; else mode=append; fi
    new=$(edit "$f" "$mode" "${list:-}") || die "cannot edit $f (a GRUB_CMDLINE_LINUX value over several lines?): add lsm=...,bpf by hand"
    if [ $dry = 1 ]; then
        say "would change $f:"
        printf '%s\n' "$new" | diff -u "$f" - || true
        continue
    fi
    cp -p "$f" "$f.d4c-backup-$stamp"
    printf '%s\n' "$new" >"$f.d4c-new"
    mv "$f.d4c-new" "$f"
    say "changed $f (backup: $f.d4c-backup-$stamp)"
done
[ $dry = 1 ] && exit 0

if [ $update = 1 ]; then
    run() { if [ "$R" = "" ]; then "$@"; else chroot "$R" "$@"; fi; }
    if run sh -c 'command -v update-grub' >/dev/null 2>&1; then
        run update-grub
    elif run sh -c 'command -v grub-mkconfig' >/dev/null 2>&1; then
        run grub-mkconfig -o /boot/grub/grub.cfg
    elif run sh -c 'command -v grub2-mkconfig' >/dev/null 2>&1; then
        run grub2-mkconfig -o /boot/grub2/grub.cfg
    else
        die "changed the GRUB defaults, but none of update-grub, grub-mkconfig, grub2-mkconfig is here: write the boot configuration, then reboot"
    fi
fi

# /var/run is a link to /run on current systems; below a root, follow it there.
run_dir=$R/run
[ -d "$run_dir" ] || run_dir=$R/var/run
mkdir -p "$run_dir"
: >"$run_dir/reboot-required"
grep -qx d4c-bpf-lsm "$run_dir/reboot-required.pkgs" 2>/dev/null || echo d4c-bpf-lsm >>"$run_dir/reboot-required.pkgs"
say "reboot required: $run_dir/reboot-required is set for the node's reboot coordinator; the new lsm= takes effect at the next boot"
