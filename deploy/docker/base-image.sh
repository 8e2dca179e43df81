#!/usr/bin/env bash
# Makes the base image the Dockerfile builds from, locally, from Debian's
# packages: no image registry is needed (none is reachable where this project
# is developed and tested). Debian 12 (bookworm), debootstrap's `minbase`
# variant plus the libraries the daemon links (libssl3, zlib1g, libstdc++ for
# ONNX Runtime) and ca-certificates, imported with `docker import` and tagged
# $BASE_IMAGE (the Dockerfile's default `BASE`). The engine caches it by tag:
# a second run does nothing.
#
#   deploy/docker/base-image.sh           make it when the tag is missing
#   deploy/docker/base-image.sh --check   exit 1 when the tag is missing
#   deploy/docker/base-image.sh --force   make it again
#
# Where a registry is reachable, `docker build --build-arg BASE=debian:bookworm-slim`
# works as well: the build stage only needs a shell, coreutils and ldd.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-lstm-ae-base:bookworm}"
SUITE=bookworm
# Debian's mirror: the one apt uses on this machine, if any, else the default.
MIRROR="${DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(grep -rhoE '^(deb|URIs:)[[:space:]]+[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)"
fi
case "${1:-}" in
  --check) docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; exit $? ;;
  --force) ;;
  "") if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then exit 0; fi ;;
  *) echo "base-image.sh: unknown argument '$1'" >&2; exit 2 ;;
esac

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap $SUITE (minbase) into $root${MIRROR:+ from $MIRROR}" >&2
debootstrap --variant=minbase --include=libssl3,zlib1g,libstdc++6,ca-certificates \
  "$SUITE" "$root" ${MIRROR:+"$MIRROR"} >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2
  exit 1
}
rm -f "$root.log"
# What an image never uses: apt's lists and caches, documentation, locales.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import - "$BASE_IMAGE" >/dev/null
echo "base-image: $BASE_IMAGE ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
