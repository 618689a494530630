#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, etcd, kubectl) from the Go modules pinned in
# go.mod/go.sum beside this script, through the module proxy, into a cache under target/.
# Prints the folder holding the binaries (usable as KUBEBUILDER_ASSETS) on its last line.
# A second run with the same pins reuses the cache and builds nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' go.mod)
[ -n "$k8s_version" ] || { echo "build.sh: k8s.io/kubernetes is not pinned in go.mod" >&2; exit 1; }
out="${CONTROLPLANE_CACHE:-$root/target/controlplane}/$k8s_version"
stamp="$out/.stamp"
key=$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$out"
rm -f "$stamp"

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
ver_flags() { # $1: the Go package that holds gitVersion and friends
  printf -- '-X %s.%s=%s ' "$1" gitVersion "$k8s_version" "$1" gitMajor "$major" \
    "$1" gitMinor "$minor" "$1" gitTreeState clean "$1" buildDate 1970-01-01T00:00:00Z
}

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
build() { # $1: output name, $2: package, $3: extra ldflags
  echo "build.sh: building $1 ($2)" >&2
  go build -trimpath -ldflags "-s -w $3" -o "$out/$1.tmp" "$2"
  mv "$out/$1.tmp" "$out/$1"
}

start=$(date +%s)
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$(ver_flags k8s.io/component-base/version)"
# The controller manager aggregates the built-in edit/view roles, collects garbage and
# finishes namespace deletion: the tenant-isolation tests act as users through `edit`.
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager \
  "$(ver_flags k8s.io/component-base/version)"
build kubectl k8s.io/kubernetes/cmd/kubectl \
  "$(ver_flags k8s.io/component-base/version) $(ver_flags k8s.io/client-go/pkg/version)"
build etcd go.etcd.io/etcd/server/v3 ""
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2

echo "$key" > "$stamp"
echo "$out"
