# shellcheck shell=bash
# The postgres-17 root (sourced by build.sh): the userland of
# ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0 from Debian 13 packages, with
# DocumentDB 0.107 built from the vendored source in a separate build root, so the runtime root
# carries no compiler.

PG17_PACKAGES=(postgresql-17 postgresql-17-cron postgresql-17-rum postgresql-17-postgis-3
  postgresql-17-pgvector)
PG17_BUILD_PACKAGES=(postgresql-server-dev-17 libbson-dev libintelrdfpmath-dev libicu-dev
  libkrb5-dev libpcre2-dev build-essential pkg-config)
DOCDB_TGZ="$VENDOR/documentdb-0.107-ae628e91.tar.gz"
DOCDB_SRC=documentdb-0.107-ae628e91

pg17_inputs() { echo "$DOCDB_TGZ" "${BASH_SOURCE[0]}"; }

# pg17_runtime DIR: PostgreSQL 17 and the extensions DocumentDB needs, without a default cluster.
pg17_runtime() {
  add_postgres_user "$1"
  mkdir -p "$1/etc/postgresql-common/createcluster.d"
  echo 'create_main_cluster = false' >"$1/etc/postgresql-common/createcluster.d/no-main.conf"
  apt_install "$1" "${PG17_PACKAGES[@]}"
}

# pg17_documentdb BUILD: builds pg_documentdb_core and pg_documentdb in BUILD (a copy of the
# runtime root plus the build packages) and installs them under BUILD/out (make DESTDIR).
# Debian's library for `intelmathlib` is libbidgcc000: a one-line .pc file maps it.
pg17_documentdb() {
  local b=$1
  apt_install "$b" "${PG17_BUILD_PACKAGES[@]}"
  mkdir -p "$b/src/pkgconfig" "$b/out"
  tar -xzf "$DOCDB_TGZ" -C "$b/src"
  printf 'Name: intelmathlib\nDescription: Debian libintelrdfpmath-dev\nVersion: 2.0\nLibs: -lbidgcc000\nCflags:\n' \
    >"$b/src/pkgconfig/intelmathlib.pc"
  # with_llvm=no: no JIT bitcode; OPTFLAGS= : no -march=native (the root must not depend on this CPU).
  # shellcheck disable=SC2016 # expanded by the inner shell
  in_root "$b" sh -ec '
    export PKG_CONFIG_PATH=/src/pkgconfig
    for dir in pg_documentdb_core pg_documentdb; do
      make -C "/src/$1/$dir" -j2 with_llvm=no OPTFLAGS=
      make -C "/src/$1/$dir" with_llvm=no DESTDIR=/out install
    done
  ' sh "$DOCDB_SRC" >"$b/build.log" 2>&1 ||
    { tail -n 20 "$b/build.log" >&2; die "DocumentDB build failed (log: $b/build.log)"; }
}

# pg17_check DIR: the installed extension loads its shared libraries from the runtime root.
pg17_check() {
  local missing
  missing="$(in_root "$1" sh -c 'ldd /usr/lib/postgresql/17/lib/pg_documentdb*.so' | grep 'not found' || true)"
  [[ -z $missing ]] || die "postgres-17: DocumentDB needs libraries the root lacks: $missing"
  grep -qx "default_version = '0.107-0'" "$1/usr/share/postgresql/17/extension/documentdb.control" ||
    die "postgres-17: documentdb.control is not 0.107-0"
}

build_postgres_17() {
  local rt bld
  [[ -r $DOCDB_TGZ ]] || die "$DOCDB_TGZ not found (set DOCUMENTDB_VENDOR_DIR)"
  rt="$(new_root postgres-17)"
  step "postgres-17: apt-get install ${PG17_PACKAGES[*]}" pg17_runtime "$rt"
  bld="$(mktemp -d "$ROOTS/.tmp-postgres-17-build.XXXXXX")"
  step "postgres-17: build root (copy + build packages)" cp -a "$rt/." "$bld/"
  step "postgres-17: DocumentDB 0.107 build" pg17_documentdb "$bld"
  cp -a "$bld/out/." "$rt/"
  rm -rf "$bld"
  pg17_check "$rt"
  slim "$rt"
  in_root "$rt" dpkg-query -W >"$rt.packages"
  publish "$rt" postgres-17 "$1"
  mv "$rt.packages" "$ROOTS/postgres-17.packages"
}
