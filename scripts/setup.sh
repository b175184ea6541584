#!/usr/bin/env bash
# Installs what building and testing d4c needs on a Debian 12 machine with bookworm-security
# (it has llvm-22-dev) or a later Debian. Idempotent:
# each step checks first and says what it does. Needs root for apt (skipped with a note
# otherwise). Toolchain pieces: the Rust toolchain pinned in rust-toolchain.toml with
# rust-src (it builds the eBPF object too), bpf-linker built against that toolchain's LLVM
# major (Debian's llvm-N-dev), cargo-fuzz; packages: qemu-system-x86, busybox-static, cpio,
# zstd (guest harness), protobuf-compiler (CRI test client), and containerd 1.7 with NRI
# (tests/containerd/setup.sh).
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }
root=$(cd "$(dirname "$0")/.." && pwd)
# `--demo`: only what scripts/demo.sh needs (no cargo-fuzz, which only the test suite runs).
demo=0
[[ ${1:-} == --demo ]] && demo=1

# 0. The OS: Debian 12 or later (apt, Debian's archive and keyring, llvm-N-dev from it)
os_id=$(. /etc/os-release 2>/dev/null && echo "${ID:-}")
# (testing and sid have no VERSION_ID)
os_version=$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}")
if [[ $os_id != debian || ( -n $os_version && ${os_version%%.*} -lt 12 ) ]] && [[ -z ${D4C_SETUP_ANY_OS:-} ]]; then
    say "this is $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-an unknown OS}"); setup.sh supports Debian 12 and later only:"
    say "it installs Debian packages (llvm-N-dev of the pinned rustc, qemu-system-x86, busybox-static, cpio, zstd, protobuf-compiler) and containerd 1.7 from Debian 13's archive"
    say "install those by hand, or run with D4C_SETUP_ANY_OS=1 to try anyway"
    exit 1
fi
# Versions of the cargo-installed tools: a newer bpf-linker may drop the LLVM we build with.
BPF_LINKER_VERSION=0.13.0
CARGO_FUZZ_VERSION=0.13.2

# 1. The pinned toolchain (rust-toolchain.toml is the one place that names it) with rust-src.
pin=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")
[[ -n $pin ]] || { say "rust-toolchain.toml names no channel"; exit 1; }
if ! rustup component list --toolchain "$pin" --installed 2>/dev/null | grep -q '^rust-src'; then
    say "installing Rust $pin with rust-src (the pinned toolchain, rust-toolchain.toml)"
    rustup toolchain install "$pin" --profile minimal --component rust-src,rustfmt,clippy
fi
rust_llvm=$(rustup run "$pin" rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[[ -n $rust_llvm ]] || { say "cannot read the LLVM version of rustc $pin"; exit 1; }

# 2. Debian packages, with the LLVM (dev) of the pinned rustc for bpf-linker.
APT_PACKAGES=("llvm-$rust_llvm-dev" qemu-system-x86 busybox-static cpio zstd protobuf-compiler)
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
        available=()
        for p in "${missing[@]}"; do
            if apt-cache show "$p" >/dev/null 2>&1; then available+=("$p"); else say "apt has no $p"; fi
        done
        ((${#available[@]} == 0)) || apt-get install -y -q --no-install-recommends "${available[@]}" >/dev/null
    fi
fi

# 3. bpf-linker built against the pinned rustc's LLVM major (rebuilt when it is not).
# Its LLVM major: from the libLLVM it links, else from cargo's record of its features.
linker_llvm() {
    local bin
    bin=$(command -v bpf-linker) || return 0
    ldd "$bin" 2>/dev/null | sed -n 's/.*libLLVM\(\.so\)\{0,1\}[.-]\([0-9][0-9]*\).*/\2/p' | head -n1 | grep . && return 0
    grep -o '"bpf-linker [^"]*"[^}]*"features":\[[^]]*\]' "${CARGO_HOME:-$HOME/.cargo}/.crates2.json" 2>/dev/null \
        | grep -o 'llvm-[0-9]*' | head -n1 | cut -d- -f2 || true
}
linker=$(linker_llvm)
if [[ $linker != "$rust_llvm" ]] || ! bpf-linker --version >/dev/null 2>&1; then
    [[ -z $linker ]] || say "bpf-linker is built against LLVM $linker, rustc $pin uses LLVM $rust_llvm: rebuilding it"
    if [[ -d /usr/lib/llvm-$rust_llvm/lib ]]; then
        say "building bpf-linker $BPF_LINKER_VERSION against LLVM $rust_llvm (about a minute)"
        PATH=/usr/lib/llvm-$rust_llvm/bin:$PATH cargo "+$pin" install bpf-linker --version "$BPF_LINKER_VERSION" \
            --locked --force --no-default-features --features "llvm-$rust_llvm" --quiet
        linker=$(linker_llvm)
    fi
fi
if [[ $linker != "$rust_llvm" ]]; then
    say "eBPF toolchain mismatch: rustc $pin uses LLVM $rust_llvm but bpf-linker is built against LLVM ${linker:-(not installed)}, and llvm-$rust_llvm-dev is not installed to rebuild it; fix: pin rust-toolchain.toml to a toolchain whose LLVM major has a Debian llvm-N-dev (ebpf/README.md, Toolchain)"
    exit 1
fi

# 4. cargo-fuzz (the fuzz run uses the pinned toolchain with RUSTC_BOOTSTRAP=1); the test
# suite's only.
if ((demo == 0)) && ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (about a minute)"
    cargo "+$pin" install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force --quiet
fi

# 5. containerd 1.7 with NRI (from Debian 13, pinned) for the end-to-end tests.
if [[ $(id -u) -eq 0 ]]; then
    "$root/tests/containerd/setup.sh"
else
    say "not root: skipping the containerd install (tests/containerd/setup.sh)"
fi
say "ready"
