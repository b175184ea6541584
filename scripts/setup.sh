#!/usr/bin/env bash
# Installs what building and testing d4c needs on a Debian 12 / Ubuntu machine. Idempotent:
# each step checks first and says what it does. Needs root for apt (skipped with a note
# otherwise). Toolchain pieces: nightly rust-src (eBPF build), bpf-linker built against
# Debian's LLVM 22, cargo-fuzz; packages: qemu-system-x86, busybox-static, cpio, zstd
# (guest harness), protobuf-compiler (CRI test client), and containerd 1.7 with NRI
# (tests/containerd/setup.sh).
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }

APT_PACKAGES=(llvm-22-dev qemu-system-x86 busybox-static cpio zstd protobuf-compiler)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        say "missing packages ${missing[*]}: run this script as root to install them"
    else
        say "installing ${missing[*]} (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    say "adding rust-src to the nightly toolchain"
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || true
    rustup component add rust-src --toolchain nightly
fi

if ! command -v bpf-linker >/dev/null || ! bpf-linker --version >/dev/null 2>&1; then
    say "building bpf-linker against LLVM 22 (about a minute)"
    PATH=/usr/lib/llvm-22/bin:$PATH cargo install bpf-linker --locked --no-default-features --features llvm-22 --quiet
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz (about a minute)"
    cargo install cargo-fuzz --locked --quiet
fi
# containerd 1.7 with NRI (from Debian 13, pinned) for the end-to-end tests.
if [[ $(id -u) -eq 0 ]]; then
    "$(dirname "$0")/../tests/containerd/setup.sh"
else
    say "not root: skipping the containerd install (tests/containerd/setup.sh)"
fi
say "ready"
