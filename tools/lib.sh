# shellcheck shell=bash
# Sourced by tools/run-demo.sh and tools/run-tests.sh first thing, before they cd:
#
#   . "$(dirname "$0")/lib.sh"
#   become_root "$0" "$@"
#   trap give_back EXIT
#
# Both need root: tools/setup.sh installs tools/packages.txt with apt-get, the demo makes
# device nodes with mknod, and the container, system and old-root suites need podman,
# systemd-nspawn and debootstrap. As root, become_root does nothing. Otherwise it runs the
# script again under sudo, keeping the variables below, and at exit gives what root made
# in the checkout back to the checkout's owner (give_back). Without sudo it says what to
# do and exits 1.

hami_top=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")   # the checkout, before the script's cd

# What the scripts and the suites read from the environment: sudo drops everything else.
# Every HAMI_DRA_* variable set is kept as well.
hami_keep_env=(
        CI BUILD CC_FOR_BUILD TEST_ARGS TMPDIR
        KEEP KEEP_TMP VERBOSE FAKE_APISERVER_VERBOSE
        http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY
)

become_root() { # SCRIPT ARGS...
        local script=$1 keep v
        shift
        [ "$(id -u)" = 0 ] && return 0
        if ! command -v sudo >/dev/null; then
                cat >&2 <<EOF
$script needs root: it installs tools/packages.txt with apt-get, the demo makes device
nodes, and the container, system and old-root suites run podman, systemd-nspawn and
debootstrap. There is no sudo here: run it as root (su -c $script), or install sudo
and give yourself sudo rights.
EOF
                exit 1
        fi
        keep=$(IFS=,; echo "${hami_keep_env[*]}")
        for v in $(compgen -e); do
                case $v in HAMI_DRA_*) keep+=,$v ;; esac
        done
        echo "$script: not root, running it under sudo" >&2
        exec sudo --preserve-env="$keep" -- "$(realpath "$script")" "$@"
}

# What root made in the checkout (build directories, logs, __pycache__) goes back to
# whoever owns the checkout, so that a user's clone holds no files the user cannot
# remove. A checkout root owns, root keeps. For the scripts' EXIT traps: never fails.
give_back() {
        local owner
        [ "$(id -u)" = 0 ] || return 0
        owner=$(stat -c %u:%g "$hami_top") || return 0
        [ "${owner%%:*}" != 0 ] || return 0
        find "$hami_top" -xdev -user 0 -exec chown -h "$owner" {} + || true
}
