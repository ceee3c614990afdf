#!/bin/bash
# Install the Debian 12 packages of tools/packages.txt (as root), skipping what is there.
#   tools/setup.sh             every section: develop, run the demo and the tests
#   tools/setup.sh --build     [runtime] and [build]: build and install on a production node
#   tools/setup.sh --runtime   [runtime]: run a build installed from elsewhere
#   tools/setup.sh --list [--build|--runtime]   print the names, install nothing
set -euo pipefail
cd "$(dirname "$0")/.."

sections="runtime build test"
list=0
for arg in "$@"; do
        case $arg in
        --runtime) sections="runtime" ;;
        --build) sections="runtime build" ;;
        --list) list=1 ;;
        *) echo "usage: $0 [--runtime|--build] [--list]" >&2; exit 2 ;;
        esac
done

# The names under the [section] headers asked for.
packages() {
        awk -v want=" $sections " '
                { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
                $0 == "" { next }
                /^\[.*\]$/ { section = substr($0, 2, length($0) - 2); next }
                index(want, " " section " ") { print }
        ' tools/packages.txt
}

mapfile -t want < <(packages)
if [ $list = 1 ]; then
        printf '%s\n' "${want[@]}"
        exit 0
fi
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
