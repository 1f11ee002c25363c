# shellcheck shell=bash
# The curl root (sourced by build.sh): the userland of curlimages/curl:8.13.0 (Alpine), made
# of Debian 13 files: BusyBox 1.37 (static) as /bin/sh and the usual tools, curl with the
# shared libraries it links, the CA bundle. No bash, no GNU coreutils, no package manager.

CURL_PACKAGES=(busybox-static curl ca-certificates)

curl_inputs() { echo "${BASH_SOURCE[0]}"; }

# curl_assemble STAGING DIR: copies what the image holds from the Debian root STAGING into
# the empty DIR.
curl_assemble() {
  local s=$1 d=$2 lib
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc/ssl/certs,proc,dev,sys,tmp,root,home/curl_user,var/tmp,run}
  chmod 1777 "$d/tmp" "$d/var/tmp"
  cp "$s/usr/bin/busybox" "$d/bin/busybox"
  in_root "$d" /bin/busybox --install -s # one symlink per applet: /bin/sh, /bin/ls, /usr/bin/env...
  cp "$s/usr/bin/curl" "$d/usr/bin/curl"
  # Each library at the path ldd resolves it to in the Debian root, plus the loader.
  for lib in $(in_root "$s" ldd /usr/bin/curl | grep -o '/[^ ]*'); do
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$s$lib" "$d$lib"
  done
  cp -L "$s/etc/ssl/certs/ca-certificates.crt" "$d/etc/ssl/certs/ca-certificates.crt"
  ln -s certs/ca-certificates.crt "$d/etc/ssl/cert.pem" # Alpine's name for the bundle
  # The image's users: root, nobody, and curl_user (uid 100, gid 101), its USER.
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/:/sbin/nologin' \
    'curl_user:x:100:101:Linux User,,,:/home/curl_user:/bin/sh' >"$d/etc/passwd"
  printf '%s\n' 'root:x:0:root' 'nogroup:x:65534:' 'curl_group:x:101:curl_user' >"$d/etc/group"
  chown 100:101 "$d/home/curl_user"
  # (symlinks in the root are absolute: test them as links, not through the host's /)
  [[ -L $d/bin/sh && ! -L $d/bin/bash && ! -e $d/bin/bash && ! -e $d/usr/bin/bash ]] ||
    die "curl: /bin/sh missing or bash present"
  in_root "$d" /usr/bin/curl --version >/dev/null || die "curl: curl does not run in the assembled root"
}

build_curl() {
  local staging rt
  staging="$(new_root curl-staging)"
  step "curl: apt-get install ${CURL_PACKAGES[*]} (staging)" apt_install "$staging" "${CURL_PACKAGES[@]}"
  rt="$(mktemp -d "$ROOTS/.tmp-curl.XXXXXX")"
  chmod 755 "$rt"
  step "curl: assemble" curl_assemble "$staging" "$rt"
  in_root "$staging" dpkg-query -W "${CURL_PACKAGES[@]}" >"$rt.packages"
  rm -rf "$staging"
  publish "$rt" curl "$1"
  mv "$rt.packages" "$ROOTS/curl.packages"
}
