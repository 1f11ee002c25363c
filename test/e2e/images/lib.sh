# shellcheck shell=bash
# Shared by the root builders (sourced by build.sh): paths, timed steps, the cache key and
# stamp, the Debian 13 base root, and running commands inside a root being built.

ROOTS="${CDK8S_FERRETDB_ROOTS:-/var/cache/cdk8s-ferretdb/roots}"
SUITE=trixie
MIRROR=http://deb.debian.org/debian
APT_ARCHIVES="$ROOTS/.apt-archives" # downloaded .debs, shared by every root's build

die() { echo "images/build.sh: $*" >&2; exit 1; }

# step NAME CMD...: runs CMD and prints how long it took.
step() {
  local name=$1 start=$SECONDS
  shift
  echo "images: $name ..."
  "$@"
  echo "images: $name: $((SECONDS - start)) s"
}

# key FILE...: the cache key of a root: its input files plus the host's postgres uid/gid,
# which the postgres root bakes in.
key() {
  { cat "$@"; id -u postgres; id -g postgres; } | sha256sum | cut -c1-16
}

stamp_of() { echo "$ROOTS/$1.stamp"; }

# fresh NAME KEY: whether the root NAME exists and was built from KEY.
fresh() {
  [[ -d $ROOTS/$1 && "$(cat "$(stamp_of "$1")" 2>/dev/null)" == "$2" ]]
}

# publish TMPDIR NAME KEY: the finished root replaces the old one in one rename; the stamp
# is written last, so a half-built or half-replaced root is never taken as fresh.
publish() {
  local tmp=$1 name=$2 k=$3 old="$ROOTS/.old-$2.$$"
  rm -f "$(stamp_of "$name")"
  if [[ -d $ROOTS/$name ]]; then mv "$ROOTS/$name" "$old"; fi
  mv "$tmp" "$ROOTS/$name"
  echo "$k" >"$(stamp_of "$name")"
  rm -rf "$old"
}

# in_root DIR CMD...: runs CMD chrooted in DIR as root, with /proc, /dev and the shared apt
# archive mounted in a private mount namespace (they vanish with it), and a clean environment.
in_root() {
  local dir=$1
  shift
  mkdir -p "$APT_ARCHIVES/partial"
  # shellcheck disable=SC2016 # expanded by the inner shell
  unshare -m --propagation private -- /bin/sh -ec '
    dir=$1; archives=$2; shift 2
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    if [ -d "$dir/var/cache/apt/archives" ]; then mount --bind "$archives" "$dir/var/cache/apt/archives"; fi
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root \
      DEBIAN_FRONTEND=noninteractive chroot "$dir" "$@"
  ' sh "$dir" "$APT_ARCHIVES" "$@"
}

# apt_install DIR PACKAGE...: installs packages (no recommends) into the root DIR; services
# are never started (policy-rc.d) and the apt lists are updated first.
apt_install() {
  local dir=$1
  shift
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  in_root "$dir" apt-get update -qq
  in_root "$dir" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  rm -f "$dir/usr/sbin/policy-rc.d"
}

# slim DIR: what a runtime root does not need (apt's lists and caches, docs, man pages).
slim() {
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/usr/share/doc/* "$1"/usr/share/man/*
}

# base: a Debian 13 minbase root with trixie-updates and trixie-security, cached like the
# roots (key: this file). Each root starts as a copy of it.
BASE="$ROOTS/.base-$SUITE"
debootstrap_to() {
  debootstrap --variant=minbase --cache-dir="$APT_ARCHIVES" "$SUITE" "$1" "$MIRROR" >"$1.log" 2>&1 ||
    { tail -n 20 "$1.log" >&2; die "debootstrap failed (log: $1.log)"; }
}
base_key() { key "${BASH_SOURCE[0]}"; }
build_base() {
  local k tmp
  k="$(base_key)"
  if fresh ".base-$SUITE" "$k"; then return 0; fi
  command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
  tmp="$(mktemp -d "$ROOTS/.tmp-base.XXXXXX")"
  chmod 755 "$tmp"
  mkdir -p "$APT_ARCHIVES"
  step "debootstrap --variant=minbase $SUITE" debootstrap_to "$tmp"
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  step "apt-get upgrade in the base" in_root "$tmp" sh -c 'apt-get update -qq && apt-get -y -qq upgrade >/dev/null'
  rm -f "$tmp.log"
  publish "$tmp" ".base-$SUITE" "$k"
}

# new_root NAME: a fresh copy of the base to build NAME in; prints its path.
new_root() {
  local tmp
  tmp="$(mktemp -d "$ROOTS/.tmp-$1.XXXXXX")"
  chmod 755 "$tmp"
  cp -a "$BASE/." "$tmp/"
  echo "$tmp"
}

# add_postgres_user DIR: the root's postgres user and group get the host's uid and gid, so a
# data directory is owned by the same ids on both sides. Done before any package can take them.
add_postgres_user() {
  local uid gid
  uid="$(id -u postgres)" gid="$(id -g postgres)"
  in_root "$1" groupadd --system --gid "$gid" postgres
  in_root "$1" useradd --system --uid "$uid" --gid "$gid" --home-dir /var/lib/postgresql \
    --shell /bin/bash --comment 'PostgreSQL administrator' postgres
}
