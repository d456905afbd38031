#!/usr/bin/env bash
# Installs kustomize into $MACHINA_CACHE/bin (next to nats-server) with `go install` from the Go
# module proxy, and prints the binary's path on stdout. Idempotent: with the pinned version
# cached it only asks the binary its version (milliseconds).
# Usage: test/harness/kustomize.sh [install|path]
#   install (default)  build it when missing or at another version, then print its path
#   path               print where it is (or would be) without building
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# v5.8.1 builds with Go 1.26 (kustomize/api v0.21.1); v5.8.2+ were not tried here.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.1}"
BIN="$MACHINA_CACHE/bin/kustomize"

# `kustomize version` prints "v5.8.1".
cached_version() {
  [[ -x $BIN ]] || return 1
  "$BIN" version 2>/dev/null | tr -d '[:space:]'
}

install() {
  local have tmp
  mkdir -p "$MACHINA_CACHE/bin"
  have=$(cached_version || true)
  [[ $have == "$KUSTOMIZE_VERSION" ]] && return 0
  # Two clones installing at once: the second waits, then finds it built.
  exec 9>"$MACHINA_CACHE/.install-kustomize.lock"
  flock 9
  have=$(cached_version || true)
  [[ $have == "$KUSTOMIZE_VERSION" ]] && return 0
  [[ -z $have ]] || log "cached kustomize is ${have}, want $KUSTOMIZE_VERSION"
  command -v go >/dev/null 2>&1 || die "go not found; install Go >= 1.24 and put it on PATH to build kustomize"
  tmp=$(mktemp -d "$MACHINA_CACHE/bin/.build-kustomize.XXXXXX")
  log "building kustomize $KUSTOMIZE_VERSION (go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION; about a minute the first time)"
  if ! GOBIN="$tmp" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2; then
    rm -rf "$tmp"
    die "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION failed (see output above)"
  fi
  # Rename, not overwrite: another process may be running the cached binary.
  mv -f "$tmp/kustomize" "$BIN"
  rm -rf "$tmp"
  have=$(cached_version || true)
  [[ $have == "$KUSTOMIZE_VERSION" ]] || die "built kustomize reports '${have}', expected $KUSTOMIZE_VERSION"
}

case "${1:-install}" in
  install) install ;;
  path) ;;
  *) die "usage: $0 [install|path]" ;;
esac
printf '%s\n' "$BIN"
