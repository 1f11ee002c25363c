#!/usr/bin/env bash
# Builds the real DocumentDB extension (pg_documentdb_core + pg_documentdb 0.107-0, not the
# gateway) and pgvector 0.8.0 from the vendored tarballs, and installs them into Debian's
# PostgreSQL 15. Cached per machine: when the stamp names this exact input (both tarballs and
# this script) and the installed files are still there, it does nothing.
# Env: DOCUMENTDB_VENDOR_DIR (default: <repo>/../shared/vendor),
#      DOCUMENTDB_CACHE_DIR (default: /var/cache/cdk8s-ferretdb).
# Snags worked around here (see FACTS.md, "Real DocumentDB on PostgreSQL 15"):
#  - the build asks pkg-config for `intelmathlib`: a private .pc maps it to Debian's -lbidgcc000;
#  - Debian's libbson 1.23 lacks BSON_SUBTYPE_SENSITIVE (0x08, libbson 1.28): defined on the
#    command line, and the -Wswitch warning it causes is kept a warning (upstream uses -Werror).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
vendor="${DOCUMENTDB_VENDOR_DIR:-$here/../../../../shared/vendor}"
root="${DOCUMENTDB_CACHE_DIR:-/var/cache/cdk8s-ferretdb}"
docdb_tgz="$vendor/documentdb-0.107-ae628e91.tar.gz"
vector_tgz="$vendor/pgvector-0.8.0.tar.gz"
pg_config=/usr/lib/postgresql/15/bin/pg_config
ext_dir=/usr/share/postgresql/15/extension
lib_dir=/usr/lib/postgresql/15/lib

die() { echo "documentdb/build.sh: $*" >&2; exit 1; }
need() { [[ -e $1 ]] || die "$1 not found: apt-get install $2"; }

# What the installed extension needs at run time (CREATE EXTENSION documentdb CASCADE).
need /usr/lib/postgresql/15/bin/postgres postgresql-15
need "$lib_dir/pg_cron.so" postgresql-15-cron
need "$ext_dir/rum.control" postgresql-15-rum
need "$lib_dir/postgis-3.so" postgresql-15-postgis-3
for f in "$docdb_tgz" "$vector_tgz"; do
  [[ -r $f ]] || die "$f not found (set DOCUMENTDB_VENDOR_DIR to the directory of the tarballs)"
done

# The stub extension of older test fixtures must not survive next to the real one.
rm -f "$ext_dir/documentdb--0.0.sql"

key="$(cat "$docdb_tgz" "$vector_tgz" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
stamp="$root/documentdb.installed"
installed() {
  [[ "$(cat "$stamp" 2>/dev/null)" == "$key" ]] &&
    grep -qx "default_version = '0.107-0'" "$ext_dir/documentdb.control" 2>/dev/null &&
    [[ -f $ext_dir/documentdb--0.106-0--0.107-0.sql && -f $ext_dir/vector.control ]] &&
    [[ -f $lib_dir/pg_documentdb.so && -f $lib_dir/pg_documentdb_core.so && -f $lib_dir/vector.so ]]
}
if installed; then echo "documentdb/build.sh: DocumentDB 0.107-0 + pgvector 0.8.0 already installed ($key)"; exit 0; fi

[[ $(id -u) == 0 ]] || die "installing into $lib_dir needs root"
mkdir -p "$root"
exec 9>"$root/lock"
flock 9 # concurrent test workers: one builds, the others find it installed
if installed; then echo "documentdb/build.sh: DocumentDB 0.107-0 + pgvector 0.8.0 already installed ($key)"; exit 0; fi

# What building needs.
need "$pg_config" postgresql-client-15
need /usr/include/postgresql/15/server/postgres.h postgresql-server-dev-15
need /usr/include/postgresql/libpq-fe.h libpq-dev
need /usr/include/gssapi/gssapi.h libkrb5-dev # libpq-be.h includes it
for cmd in gcc make cpp; do command -v "$cmd" >/dev/null || die "$cmd not found: apt-get install build-essential"; done
command -v pkg-config >/dev/null || die "pkg-config not found: apt-get install pkg-config"
pkg-config --exists libbson-static-1.0 || die "libbson-static-1.0 not found by pkg-config: apt-get install libbson-dev"
pkg-config --exists libpcre2-8 || die "libpcre2-8 not found by pkg-config: apt-get install libpcre2-dev"
[[ "$(gcc -print-file-name=libbidgcc000.a)" == /* ]] || die "libbidgcc000.a not found: apt-get install libintelrdfpmath-dev"

start=$SECONDS
rm -f "$stamp"
build="$root/documentdb-$key"
log="$root/documentdb-$key.log"
find "$root" -maxdepth 1 -name 'documentdb-*' ! -name "documentdb-$key*" -exec rm -rf {} + # older inputs
if [[ ! -f $build/.extracted ]]; then # else make only redoes what is missing
  rm -rf "$build" && mkdir -p "$build/pkgconfig"
  tar -xzf "$vector_tgz" -C "$build" && tar -xzf "$docdb_tgz" -C "$build" && touch "$build/.extracted"
fi
printf 'Name: intelmathlib\nDescription: Debian libintelrdfpmath-dev\nVersion: 2.0\nLibs: -lbidgcc000\nCflags:\n' \
  >"$build/pkgconfig/intelmathlib.pc"
export PKG_CONFIG_PATH="$build/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

run() { "$@" >>"$log" 2>&1 || { tail -n 15 "$log" >&2; die "failed: $* (full log: $log)"; }; }
: >"$log"
# with_llvm=no: no JIT bitcode (clang would not get COPT; skipping it also about halves the time).
# OPTFLAGS= : no -march=native, so the cached build does not depend on this CPU.
mk=(PG_CONFIG="$pg_config" with_llvm=no)
run make -C "$build/pgvector-0.8.0" -j"$(nproc)" "${mk[@]}" OPTFLAGS=
run make -C "$build/pgvector-0.8.0" "${mk[@]}" OPTFLAGS= install
src="$build/documentdb-0.107-ae628e91"
for dir in pg_documentdb_core pg_documentdb; do # core first: pg_documentdb links against it
  run make -C "$src/$dir" -j"$(nproc)" "${mk[@]}" COPT='-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch'
  run make -C "$src/$dir" "${mk[@]}" install # also deletes the old documentdb--*.sql
done
rm -rf "$lib_dir"/bitcode/{vector,pg_documentdb_core,pg_documentdb}{,.index.bc} # from builds with LLVM
echo "$key" >"$stamp"
installed || die "installed files missing after the build (log: $log)"
echo "documentdb/build.sh: built and installed DocumentDB 0.107-0 + pgvector 0.8.0 in $((SECONDS - start)) s ($key)"
