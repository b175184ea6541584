#!/usr/bin/env bash
# Installs a containerd with NRI for the end-to-end tests (tests/tests/containerd_nri.rs)
# on Debian 12: containerd 1.7 from Debian 13 (trixie), everything else from Debian 12.
# Debian 12's own containerd (1.6) has no NRI plugins. The trixie suite is added with a pin
# that installs ONLY containerd from it (priority 1 for the rest of trixie); runc stays
# Debian 12's (trixie's runc needs a newer libc). Idempotent; needs root.
set -euo pipefail

say() { printf '[containerd-setup] %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    say "not root: nothing done"; exit 1
fi
if command -v containerd >/dev/null && containerd --version | grep -q ' v\?1\.7\|v2\.'; then
    say "$(containerd --version) already installed"; exit 0
fi

cat >/etc/apt/sources.list.d/d4c-trixie.sources <<'SRC'
# Added by d4c's tests/containerd/setup.sh: Debian 13, pinned so that only containerd
# (1.7, with NRI) is installed from it. See /etc/apt/preferences.d/d4c-trixie.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
cat >/etc/apt/preferences.d/d4c-trixie <<'PIN'
# Added by d4c's tests/containerd/setup.sh: nothing from trixie but containerd.
Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: containerd
Pin: release n=trixie
Pin-Priority: 990
PIN
export DEBIAN_FRONTEND=noninteractive
say "apt-get update"
apt-get update -q >/dev/null
say "installing containerd (trixie) and runc (bookworm)"
apt-get install -y -q --no-install-recommends containerd runc/bookworm >/dev/null
# The Debian package may start a system containerd; the tests run their own.
if pgrep -x containerd >/dev/null && [[ -e /run/systemd/system ]]; then
    systemctl disable --now containerd >/dev/null 2>&1 || true
fi
say "$(containerd --version); $(runc --version | head -1)"
