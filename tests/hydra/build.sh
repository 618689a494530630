#!/usr/bin/env bash
# Builds Ory Hydra from the Go modules pinned in go.mod/go.sum beside this script, through the
# module proxy, into a cache under target/. Prints the binary's path on its last line.
# HYDRA_BIN names a binary of your own instead (nothing is built). A second run with the same
# pins reuses the cache and builds nothing.
set -euo pipefail

if [ -n "${HYDRA_BIN:-}" ]; then
  [ -x "$HYDRA_BIN" ] || { echo "build.sh: HYDRA_BIN=$HYDRA_BIN is not an executable" >&2; exit 1; }
  echo "$HYDRA_BIN"
  exit 0
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

version=$(awk '($1 == "require" && $2 == "github.com/ory/hydra/v2") { print $3 } $1 == "github.com/ory/hydra/v2" { print $2 }' go.mod)
[ -n "$version" ] || { echo "build.sh: github.com/ory/hydra/v2 is not pinned in go.mod" >&2; exit 1; }
out="${HYDRA_CACHE:-$root/target/hydra}/$version"
stamp="$out/.stamp"
key=$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -x "$out/hydra" ]; then
  echo "$out/hydra"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build Hydra" >&2; exit 1; }
# The in-memory store (DSN=memory) is SQLite, which needs cgo and a C compiler.
command -v "${CC:-cc}" >/dev/null || { echo "build.sh: a C compiler (cc) is needed to build Hydra with SQLite" >&2; exit 1; }
mkdir -p "$out"
rm -f "$stamp"

start=$(date +%s)
echo "build.sh: building hydra $version" >&2
CGO_ENABLED=1 GOFLAGS=-mod=readonly go build -trimpath -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-s -w -X github.com/ory/hydra/v2/driver/config.Version=$version" \
  -o "$out/hydra.tmp" github.com/ory/hydra/v2
mv "$out/hydra.tmp" "$out/hydra"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2

echo "$key" > "$stamp"
echo "$out/hydra"
