#!/bin/bash
# Install what tools/packages.txt lists (root, Debian 12), skipping what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t want < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' tools/packages.txt)
missing=()
for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
                echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
                exit 1
        fi
        echo "setup: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
