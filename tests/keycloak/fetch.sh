#!/usr/bin/env bash
# Fetches Keycloak's server distribution (keycloak-quarkus-dist, a zip on Maven Central) into a
# cache under target/, checks its digest, and builds it once for dev mode with an in-memory
# database (each test run starts empty). Prints the distribution's folder on its last line.
# KEYCLOAK_HOME names a distribution of your own instead (it must have been built with
# `bin/kc.sh build --db=dev-mem`). A second run reuses the cache and fetches nothing.
# Needs Java 17 or later (Keycloak is a Java server) and curl or Maven.
set -euo pipefail

if [ -n "${KEYCLOAK_HOME:-}" ]; then
  [ -x "$KEYCLOAK_HOME/bin/kc.sh" ] || { echo "fetch.sh: KEYCLOAK_HOME=$KEYCLOAK_HOME has no bin/kc.sh" >&2; exit 1; }
  echo "$KEYCLOAK_HOME"
  exit 0
fi

version=26.5.6
sha256=490189d9dff05272432d51f71a069462eeca97f2920a694d539a1e6c26a5a347
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="${KEYCLOAK_CACHE:-$root/target/keycloak}"
out="$cache/keycloak-$version"
stamp="$out/.stamp"
key=$(sha256sum < "${BASH_SOURCE[0]}" | cut -d" " -f1)

command -v java >/dev/null || { echo "fetch.sh: Java 17 or later is needed to run Keycloak (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -x "$out/bin/kc.sh" ]; then
  echo "$out"
  exit 0
fi

zip="$cache/keycloak-quarkus-dist-$version.zip"
if ! echo "$sha256  $zip" | sha256sum -c --status 2>/dev/null; then
  start=$(date +%s)
  echo "fetch.sh: fetching keycloak-quarkus-dist $version from Maven Central" >&2
  rm -f "$zip"
  if command -v curl >/dev/null; then
    url="https://repo.maven.apache.org/maven2/org/keycloak/keycloak-quarkus-dist/$version/keycloak-quarkus-dist-$version.zip"
    curl -fsSL --retry 3 -o "$zip.tmp" "$url"
    mv "$zip.tmp" "$zip"
  else
    mvn -q dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$version:zip" -DoutputDirectory="$cache"
  fi
  echo "$sha256  $zip" | sha256sum -c --status || { echo "fetch.sh: $zip does not have the pinned SHA-256" >&2; exit 1; }
  echo "fetch.sh: fetched in $(( $(date +%s) - start ))s" >&2
fi

rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
if command -v unzip >/dev/null; then
  unzip -q "$zip" -d "$out.tmp"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$out.tmp"
  chmod +x "$out.tmp/keycloak-$version/bin/"*.sh
fi
mv "$out.tmp/keycloak-$version" "$out"
rmdir "$out.tmp"
start=$(date +%s)
echo "fetch.sh: building keycloak $version for dev mode with an in-memory database" >&2
"$out/bin/kc.sh" build --db=dev-mem >&2
echo "fetch.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$key" > "$stamp"
echo "$out"
