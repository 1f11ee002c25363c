# shellcheck shell=bash
# The exporter root (sourced by build.sh): the userland of
# quay.io/prometheuscommunity/postgres-exporter:v0.17.1 from Debian 13's
# prometheus-postgres-exporter 0.17.1 (the upstream image is busybox plus the binary).

EXPORTER_PACKAGES=(prometheus-postgres-exporter)

exporter_inputs() { echo "${BASH_SOURCE[0]}"; }

build_exporter() {
  local rt version
  rt="$(new_root exporter)"
  step "exporter: apt-get install ${EXPORTER_PACKAGES[*]}" apt_install "$rt" "${EXPORTER_PACKAGES[@]}"
  # The image's entrypoint is /bin/postgres_exporter; Debian installs it as prometheus-postgres-exporter.
  ln -s /usr/bin/prometheus-postgres-exporter "$rt/bin/postgres_exporter"
  version="$(in_root "$rt" postgres_exporter --version 2>&1 | sed -n 1p)"
  [[ $version == *"version 0.17.1"* ]] || die "exporter: postgres_exporter --version says: $version"
  slim "$rt"
  in_root "$rt" dpkg-query -W >"$rt.packages"
  publish "$rt" exporter "$1"
  mv "$rt.packages" "$ROOTS/exporter.packages"
}
