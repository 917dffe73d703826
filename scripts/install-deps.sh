#!/usr/bin/env bash
# Install the Debian packages the hotline needs, only those missing.
#   PostgreSQL (server), espeak-ng + sox (Mandarin prompts), sip-tester (SIPp: the demo
#   carrier that calls the demo trunk, README), and with --test chromium + chromium-driver
#   (browser tests of the desk).
set -euo pipefail

want=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
have_initdb() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

have_initdb || want+=(postgresql)
command -v espeak-ng >/dev/null 2>&1 || want+=(espeak-ng)
command -v sox >/dev/null 2>&1 || want+=(sox)
python3 -c 'import ensurepip, venv' 2>/dev/null || want+=(python3-venv)
command -v sipp >/dev/null 2>&1 || want+=(sip-tester)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
  # A Chinese font, so screenshots of the desk are readable.
  have_pkg fonts-wqy-zenhei || want+=(fonts-wqy-zenhei)
fi

if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: please install as root: apt-get install ${want[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${want[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
