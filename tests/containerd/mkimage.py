#!/usr/bin/env python3
"""Builds a one-layer OCI image archive from Debian's busybox-static, for `ctr images import`.

Usage: mkimage.py OUT.tar NAME ENTRYPOINT...   (NAME e.g. docker.io/d4c/busybox:1)

The layer holds /bin/busybox, a link per applet in /bin, /etc/passwd, /etc/group and
/tmp. No registry is needed; importing takes a fraction of a second.
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(info)


def layer():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            add_dir(tar, d)
        with open(BUSYBOX, "rb") as f:
            add_file(tar, "bin/busybox", f.read(), 0o755)
        applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True)
        for applet in sorted(set(applets.stdout.split())):
            if applet == "busybox":
                continue
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
            tar.addfile(info)
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    diff = raw.getvalue()
    return gzip.compress(diff, mtime=0), "sha256:" + hashlib.sha256(diff).hexdigest()


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    add_file(out, "blobs/sha256/" + digest, data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, name, entrypoint = sys.argv[1], sys.argv[2], sys.argv[3:]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    gz, diff_id = layer()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(path, "w") as out:
        add_dir(out, "blobs")
        add_dir(out, "blobs/sha256")
        layer_desc = blob(out, gz)
        config_desc = blob(out, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_desc}],
        }
        manifest_desc = blob(out, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        }
        add_file(out, "index.json", json.dumps(index).encode())
        add_file(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    os.chmod(path, 0o644)


if __name__ == "__main__":
    main()
