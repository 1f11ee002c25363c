#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds the roots the e2e tests run the synthesized containers in: the userland of each image
# the library synthesizes, from Debian 13 (trixie) packages (see README.md). Once per machine:
# each root is cached under $CDK8S_FERRETDB_ROOTS (default /var/cache/cdk8s-ferretdb/roots) with
# a stamp naming the key of its inputs (package lists and build steps in these scripts, the
# vendored DocumentDB tarball, the host's postgres uid/gid); a root whose key changed is rebuilt
# in a temporary folder and swapped in at the end.
# Usage: build.sh [--check] [ROOT...]   (ROOT: postgres-17, exporter, curl; default all)
#   --check: build nothing; exit 1 naming each root that is missing or stale.
# Env: CDK8S_FERRETDB_ROOTS, DOCUMENTDB_VENDOR_DIR (default <repo>/../shared/vendor).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENDOR="${DOCUMENTDB_VENDOR_DIR:-$here/../../../../shared/vendor}"
# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=postgres-17.sh
source "$here/postgres-17.sh"
# shellcheck source=exporter.sh
source "$here/exporter.sh"
# shellcheck source=curl.sh
source "$here/curl.sh"

check=false
if [[ ${1:-} == --check ]]; then check=true; shift; fi
roots=("$@")
[[ ${#roots[@]} -gt 0 ]] || roots=(postgres-17 exporter curl)
for r in "${roots[@]}"; do
  [[ $r =~ ^(postgres-17|exporter|curl)$ ]] || die "unknown root $r (postgres-17, exporter, curl)"
done

# root_key NAME: the key of NAME's inputs (these shared scripts plus the root's own).
root_key() {
  local inputs
  case $1 in
    postgres-17) inputs="$(pg17_inputs)" ;;
    exporter) inputs="$(exporter_inputs)" ;;
    curl) inputs="$(curl_inputs)" ;;
  esac
  # shellcheck disable=SC2086 # the inputs are paths without spaces
  key "$here/build.sh" "$here/lib.sh" $inputs
}

if $check; then
  stale=()
  for r in "${roots[@]}"; do fresh "$r" "$(root_key "$r")" || stale+=("$r"); done
  if [[ ${#stale[@]} -gt 0 ]]; then
    echo "images/build.sh --check: missing or stale under $ROOTS: ${stale[*]} (run: bash test/e2e/images/build.sh)" >&2
    exit 1
  fi
  echo "images/build.sh --check: ${roots[*]} up to date under $ROOTS"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "building roots needs root (debootstrap, chroot, mounts)"
mkdir -p "$ROOTS"
exec 9>"$ROOTS/.lock"
flock 9 # one build at a time per machine; a second caller then finds the roots fresh
total=$SECONDS
find "$ROOTS" -maxdepth 1 -name '.tmp-*' -exec rm -rf {} + # left by an interrupted build
for r in "${roots[@]}"; do
  k="$(root_key "$r")"
  if fresh "$r" "$k"; then echo "images: $r up to date ($k)"; continue; fi
  build_base
  step "$r (key $k)" "build_${r//-/_}" "$k"
done
echo "images: done in $((SECONDS - total)) s: ${roots[*]} under $ROOTS"
