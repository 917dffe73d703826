#!/usr/bin/env bash
# Provision an Asterisk to run the hotline on.
#
# Prints the command prefix that runs Asterisk: empty when an `asterisk`
# binary is on the machine already, `chroot ROOT` when a Debian sid root is
# used. Debian 12/13 ship no Asterisk; sid has Asterisk 22, so build a
# minimal sid root once with debootstrap into a cache folder and reuse it.
set -euo pipefail

cache="${HOTLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hotline}"
root="$cache/asterisk-root"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "provision-asterisk: $*" >&2; }

if [ -z "${HOTLINE_FORCE_CHROOT:-}" ] && command -v asterisk >/dev/null 2>&1; then
  log "using the machine's $(command -v asterisk)"
  echo ""
  exit 0
fi

if [ -x "$root/usr/sbin/asterisk" ] && [ -f "$root/.hotline-ready" ]; then
  echo "$root"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

mkdir -p "$cache"
tmp="$root.partial"
rm -rf "$tmp"
log "building a Debian sid root with Asterisk in $root (about a minute, 500 MB)"
debootstrap --variant=minbase \
  --include=asterisk,asterisk-modules,asterisk-core-sounds-en-gsm,asterisk-moh-opsound-gsm \
  sid "$tmp" "$mirror" >&2
# The sid root's own asterisk service files and configs are not used: the
# hotline passes its own asterisk.conf with -C.
touch "$tmp/.hotline-ready"
rm -rf "$root"
mv "$tmp" "$root"
log "ready: $root"
echo "$root"
