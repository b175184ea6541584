#!/usr/bin/env python3
"""Builds the d4c container image as an OCI archive, without a container engine.

Usage: build.py OUT.tar [BINARY] [NAME]
  BINARY  the built d4c (default target/release/d4c: `cargo build --release -p d4c`)
  NAME    image name (default docker.io/library/d4c:VERSION, VERSION being what
          `BINARY --version` says, as `image: d4c:VERSION` in install/kubernetes/ and
          install/uninstall/ resolves)

The single layer holds /usr/local/bin/d4c (BINARY without its debug information: the
symbols stay, for readable backtraces), the shared libraries it links (as `ldd` lists
them: glibc, libgcc_s, libm, the loader), the default policy set in /etc/d4c/policies, the
licenses in /usr/share/doc/d4c and /etc/passwd. Entrypoint `d4c`, command `nri`: the
DaemonSet passes `nri --config ...`. The build is reproducible: every mtime is 0, so the
same BINARY gives the same digest. It prints the name, the version, the layer's size
(compressed and not) and the digest.
Load it with `ctr -n k8s.io images import OUT.tar` (containerd), `podman load -i OUT.tar`,
or push it with `skopeo copy oci-archive:OUT.tar docker://REGISTRY/d4c:TAG`.
install/Containerfile builds the same layout with docker/podman/buildah.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oci import add_dir, add_file, write_archive  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# The licenses Cargo.toml declares: d4c's (MIT OR Apache-2.0) and the eBPF object's, which
# the kernel sees as "Dual MIT/GPL" (MIT OR GPL-2.0).
LICENSES = ("LICENSE-MIT", "LICENSE-APACHE", "LICENSE-GPL-2.0")


def shared_libraries(binary):
    """Absolute paths of the libraries `binary` loads, the loader included."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def add_parents(tar, path, seen):
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in seen:
            seen.add(d)
            add_dir(tar, d)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    out = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/release/d4c")
    if not os.access(binary, os.X_OK):
        sys.exit(f"build.py: {binary} is not an executable (cargo build --release -p d4c)")
    version = subprocess.run([binary, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    # `d4c 0.1.0 (git <rev>)`: the tag is the package version.
    tag = version.split()[1]
    name = sys.argv[3] if len(sys.argv) > 3 else f"docker.io/library/d4c:{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "d4c")
        subprocess.run(["strip", "--strip-debug", "-o", stripped, binary], check=True)
        build(out, name, version, stripped, shared_libraries(binary))


def build(out, name, version, binary, libraries):
    files = [(binary, "usr/local/bin/d4c", 0o755)]
    files += [(lib, lib.lstrip("/"), 0o755) for lib in libraries]
    # The default policy set (config/policies/, its test files left out).
    policies = os.path.join(ROOT, "config/policies")
    for f in sorted(os.listdir(policies)):
        if f.endswith(".yaml") and not f.endswith(".test.yaml"):
            files.append((os.path.join(policies, f), "etc/d4c/policies/" + f, 0o644))
    files += [(os.path.join(ROOT, lic), "usr/share/doc/d4c/" + lic, 0o644) for lic in LICENSES]

    def fill(tar):
        seen = set()
        for d in ("etc", "tmp", "run", "run/d4c", "proc", "sys", "dev"):
            seen.add(d)
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        for src, dest, mode in files:
            add_parents(tar, dest, seen)
            with open(src, "rb") as f:  # follows symlinks: the real library under the listed name
                add_file(tar, dest, f.read(), mode)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/:/sbin/nologin\n")
        add_file(tar, "etc/group", b"root:x:0:\n")

    digest, packed, unpacked = write_archive(
        out,
        name,
        fill,
        {
            "Entrypoint": ["/usr/local/bin/d4c"],
            "Cmd": ["nri"],
            "Env": ["PATH=/usr/local/bin"],
            "WorkingDir": "/",
        },
        {
            "org.opencontainers.image.title": "d4c",
            "org.opencontainers.image.description": "Stops container drift in the kernel (eBPF LSM), NRI plugin",
            "org.opencontainers.image.version": version,
        },
    )
    print(
        f"{out}: {name} ({version}), {len(files)} files, "
        f"{packed / 1e6:.1f} MB compressed ({unpacked / 1e6:.1f} MB unpacked), digest {digest}"
    )


if __name__ == "__main__":
    main()
