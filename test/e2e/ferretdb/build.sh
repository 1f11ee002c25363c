#!/usr/bin/env bash
# Builds FerretDB (the MongoDB wire proxy) from its published Go module, once per machine and
# version, into $root/ferretdb/<version>/ferretdb. The version comes from the caller: the tag of
# the default image the library synthesizes (test/e2e/ferretdb.ts reads it), so there is one
# source of truth. Usage: build.sh VERSION (e.g. 2.7.0).
# Env: FERRETDB_CACHE_DIR (default: /var/cache/cdk8s-ferretdb).
# Build flags (see FACTS.md, "Machines, FerretDB and PostgreSQL 17"): GOTOOLCHAIN=local (the
# installed Go, no toolchain download), CGO_ENABLED=0 (a static binary, like the image's), no
# -race and no ferretdb_dev tag (both turn DPanic log lines into panics).
set -euo pipefail

die() { echo "ferretdb/build.sh: $*" >&2; exit 1; }

version="${1:-}"
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "usage: build.sh VERSION (x.y.z, the default image's tag), got '${version}'"
root="${FERRETDB_CACHE_DIR:-/var/cache/cdk8s-ferretdb}/ferretdb"
dir="$root/$version"
bin="$dir/ferretdb"
stamp="$dir/ferretdb.built"
module="github.com/FerretDB/FerretDB/v2/cmd/ferretdb@v$version"
command -v go >/dev/null || die "go not found: install Go >= 1.25 (FerretDB $version's go.mod)"

# The stamp names what was built and how: another version, Go or this script rebuilds.
key="$module $(go env GOVERSION) $(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
built() { [[ -x $bin && "$(cat "$stamp" 2>/dev/null)" == "$key" ]]; }
if built; then echo "ferretdb/build.sh: FerretDB $version already built ($bin)"; exit 0; fi

mkdir -p "$dir"
exec 9>"$root/lock"
flock 9 # concurrent test workers: one builds, the others find it built
if built; then echo "ferretdb/build.sh: FerretDB $version already built ($bin)"; exit 0; fi

start=$SECONDS
rm -f "$stamp"
# Everything Go downloads or caches stays under the cache directory (GOPATH/pkg/mod).
export GOPATH="$root/gopath" GOCACHE="$root/gocache" GOMODCACHE="$root/gopath/pkg/mod"
export GOTOOLCHAIN=local CGO_ENABLED=0
gobin="$(mktemp -d "$dir/gobin.XXXXXX")"
trap 'rm -rf "$gobin"' EXIT
log="$dir/build.log"
# go install writes into GOBIN; the binary is then renamed into place, so a reader never sees
# a half-written file.
if ! GOBIN="$gobin" go install -trimpath "$module" >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  die "go install $module failed after $((SECONDS - start)) s (full log: $log)"
fi
mv -f "$gobin/ferretdb" "$bin"
echo "$key" >"$stamp"
echo "ferretdb/build.sh: FerretDB $version built in $((SECONDS - start)) s ($bin)"
