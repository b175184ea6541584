#!/bin/sh
# Removes d4c from a cluster and leaves every node clean: no pinned program or map, no
# guard of unregistered pods, pods starting and running as without d4c.
#
#   install/uninstall.sh            # kubectl's current context
#
# Before it: where the runtime requires d4c's NRI plugin (install/containerd/
# required-plugins.toml, install/crio/20-required-plugins.conf), remove that snippet and
# restart the runtime on every node, or no pod starts there once d4c is gone.
# Steps: install/uninstall/ starts a pod on every node that waits for the node's d4c
# daemon to stop; d4c's manifests are deleted (the daemon stops; a restart or an upgrade
# would keep enforcing, only this step's unload ends it); each waiting pod unloads its
# node and turns Ready; then install/uninstall/ is deleted too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
say() { echo "uninstall: $*"; }

say "1/4 starting the unload pods (namespace d4c-uninstall)"
kubectl apply -k "$here/uninstall"
kubectl -n d4c-uninstall rollout status ds/d4c-uninstall --timeout=30s >/dev/null 2>&1 || true
say "2/4 deleting d4c (namespace d4c-system); the nodes keep enforcing until step 3"
kubectl delete -k "$here/kubernetes" --ignore-not-found --wait=true
say "3/4 waiting for every node to be unloaded"
kubectl -n d4c-uninstall rollout status ds/d4c-uninstall --timeout=10m
kubectl -n d4c-uninstall logs -l app.kubernetes.io/name=d4c-uninstall -c unload --prefix --tail=2
say "4/4 removing the unload pods"
kubectl delete -k "$here/uninstall" --ignore-not-found --wait=true
say "done. On a node, nothing of d4c is left when \`ls /sys/fs/bpf/d4c\` fails and \`bpftool prog show | grep -c d4c_\` prints 0"
