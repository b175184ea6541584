# Sourced by scripts/guest-e2e.sh and scripts/demo.sh: stages what a guest (no checkout,
# no python3) needs to run containerd 1.7 with the busybox test images.
#
#   stage_containerd DIR    # fills DIR/d4c-containerd (config, runc guard, image archives)
#                           # and sets the array `tools` to `--with PATH` for containerd,
#                           # containerd-shim-runc-v2, ctr and runc.
# Returns 1 with the reason in `stage_missing` when a prerequisite is missing.

stage_containerd() {
    local stage=$1 b p
    stage_missing=""
    tools=()
    for b in containerd containerd-shim-runc-v2 ctr runc; do
        p=$(command -v "$b") || { stage_missing="no $b (tests/containerd/setup.sh installs containerd 1.7)"; return 1; }
        tools+=(--with "$p")
    done
    if containerd --version | grep -q ' 1\.6'; then
        stage_missing="containerd 1.6 has no NRI (tests/containerd/setup.sh)"; return 1
    fi
    command -v python3 >/dev/null || { stage_missing="no python3 (builds the test images)"; return 1; }
    [[ -x /bin/busybox ]] || { stage_missing="no /bin/busybox (busybox-static)"; return 1; }
    mkdir -p "$stage/d4c-containerd"
    cp tests/containerd/containerd.toml tests/containerd/runc-guard.sh "$stage/d4c-containerd/"
    stage_image "$stage" docker.io/d4c/busybox:1 /bin/sh
    stage_image "$stage" docker.io/d4c/pause:1 /bin/sleep 2147483647
}

# DIR NAME ENTRYPOINT...: the image archive, rebuilt when missing or older than mkimage.py
# or busybox.
stage_image() {
    local stage=$1 tar
    shift
    tar="$stage/d4c-containerd/$(echo "$1" | tr '/:' '__').tar"
    if [[ ! -s $tar || $tar -ot tests/containerd/mkimage.py || $tar -ot install/image/oci.py || $tar -ot /bin/busybox ]]; then
        python3 tests/containerd/mkimage.py "$tar.tmp" "$@" && mv -f "$tar.tmp" "$tar"
    fi
}

# Prints the path of the binary cargo reports for `cargo ARGS... --message-format=json`
# whose target name is NAME (empty when the build failed).
cargo_binary() {
    local name=$1
    shift
    nice cargo "$@" --message-format=json-render-diagnostics \
        | grep "\"name\":\"$name\"" | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n1
}
