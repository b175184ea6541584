#!/usr/bin/env python3
"""Builds a one-layer OCI image archive from Debian's busybox-static, for `ctr images import`.

Usage: mkimage.py OUT.tar NAME ENTRYPOINT...   (NAME e.g. docker.io/d4c/busybox:1)

The layer holds /bin/busybox, a link per applet in /bin, /etc/passwd, /etc/group and
/tmp. No registry is needed; importing takes a fraction of a second.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "install", "image"))
from oci import add_dir, add_file, add_symlink, write_archive  # noqa: E402

BUSYBOX = "/bin/busybox"


def fill(tar):
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        add_dir(tar, d)
    with open(BUSYBOX, "rb") as f:
        add_file(tar, "bin/busybox", f.read(), 0o755)
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True)
    for applet in sorted(set(applets.stdout.split())):
        if applet != "busybox":
            add_symlink(tar, "bin/" + applet, "busybox")
    add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, name, entrypoint = sys.argv[1], sys.argv[2], sys.argv[3:]
    write_archive(path, name, fill, {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"})


if __name__ == "__main__":
    main()
