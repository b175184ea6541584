"""Writes single-layer OCI image archives (for `ctr images import` or any OCI tool).

Used by install/image/build.py (the d4c image) and tests/containerd/mkimage.py (the test
images). Deterministic: every mtime is 0, so the same inputs give the same digests.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def add_symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
    tar.addfile(info)


def layer(fill):
    """A gzipped layer whose entries `fill(tar)` adds; returns (blob, diff_id, its size
    uncompressed)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        fill(tar)
    diff = raw.getvalue()
    return gzip.compress(diff, mtime=0), "sha256:" + hashlib.sha256(diff).hexdigest(), len(diff)


def _blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    add_file(out, "blobs/sha256/" + digest, data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def write_archive(path, name, fill, config, labels=None):
    """Writes the OCI archive `path` of image `name` (`registry/repo:tag`) with one layer
    filled by `fill(tar)` and the image `config` (Entrypoint, Cmd, Env, ...). Returns the
    image's digest (its manifest's, what a registry and `crictl images --digests` show) and
    the layer's size compressed and uncompressed."""
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    gz, diff_id, unpacked = layer(fill)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {**config, "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(path, "w") as out:
        add_dir(out, "blobs")
        add_dir(out, "blobs/sha256")
        layer_desc = _blob(out, gz)
        config_desc = _blob(out, json.dumps(image_config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_desc}],
        }
        manifest_desc = _blob(out, json.dumps(manifest, sort_keys=True).encode())
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
    return manifest_desc["digest"], len(gz), unpacked
