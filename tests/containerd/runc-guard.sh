#!/bin/sh
# runc wrapper for the end-to-end tests: refuses to create a container whose cgroupsPath is
# not absolute. A relative path would make runc nest the container under this machine's
# own v1 cgroups (see tests/README.md). Everything else goes to runc unchanged.
bundle=""
prev=""
for arg in "$@"; do
    case "$prev" in --bundle|-b) bundle="$arg" ;; esac
    case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; esac
    prev="$arg"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    if ! grep -q '"cgroupsPath":"/' "$bundle/config.json"; then
        echo "runc-guard: refusing a container without an absolute cgroupsPath" >&2
        exit 1
    fi
fi
exec runc "$@"
