#!/usr/bin/env bash
# Headless Chromium for the browser tests (the dashboard test drives it with
# playwright-core). Debian's package is the only browser this machine can get:
# a test tool's own browser download is refused, so nothing downloads one.
# Usage: test/harness/chromium.sh install|path|flags
#   install  installs Debian's chromium when /usr/bin/chromium is missing
#   path     prints the executable the tests launch
#   flags    prints the flags the tests pass it, one per line
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

CHROMIUM_BIN="${MACHINA_CHROMIUM:-/usr/bin/chromium}"

# The network is closed but for package registries: without the
# background-networking flags Chromium keeps opening connections that are
# refused. --no-sandbox because the tests run as root. The test adds a fresh
# --user-data-dir of its own, so no profile survives a run.
FLAGS=(
  --headless
  --no-sandbox
  --disable-gpu
  --disable-quic
  --no-first-run
  --disable-background-networking
  --disable-component-update
  --disable-sync
)

install() {
  if [[ -x $CHROMIUM_BIN ]]; then
    return 0
  fi
  [[ $CHROMIUM_BIN == /usr/bin/chromium ]] || die "MACHINA_CHROMIUM=$CHROMIUM_BIN is not an executable"
  command -v apt-get >/dev/null 2>&1 || die "chromium missing and no apt-get to install it; install Debian's chromium package"
  # Two clones installing at once would fight over dpkg's lock; one waits.
  mkdir -p "$MACHINA_CACHE"
  exec 9>"$MACHINA_CACHE/.install-chromium.lock"
  flock 9
  [[ -x $CHROMIUM_BIN ]] && return 0
  log "chromium missing; installing Debian's chromium package (a minute or two)"
  local out="$MACHINA_CACHE/apt-chromium.log"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >"$out" 2>&1; then
    log_tail "$out"
    die "apt-get could not install chromium (full output: $out)"
  fi
  [[ -x $CHROMIUM_BIN ]] || die "apt-get installed chromium but $CHROMIUM_BIN is missing"
  log "$("$CHROMIUM_BIN" --version 2>/dev/null || echo chromium) at $CHROMIUM_BIN"
}

case ${1:-} in
  install) install ;;
  path) printf '%s\n' "$CHROMIUM_BIN" ;;
  flags) printf '%s\n' "${FLAGS[@]}" ;;
  *) die "usage: $0 install|path|flags" ;;
esac
