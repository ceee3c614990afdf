#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Which system calls does hami-dra-plugin make, and which of them are missing from the
# seccomp allowlist in src/sandbox.c? Runs the daemon (or any command) under strace -f
# while you drive it (kubelet simulator, D-Bus calls, ...), then prints every call seen
# with its count, marking those the allowlist lacks.
#
#   tools/strace-syscalls.sh -- build/src/hami-dra-plugin --backend=mock --no-sandbox ...
#   (drive it from another shell, then stop it with SIGTERM)
#
# Run with --no-sandbox: under the filter a missing call fails (EPERM) or kills before
# strace can show what the daemon wanted to do next.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { sed -n '3,13p' "$0"; exit 2; }
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)"; exit 1; }

trace=$(mktemp /tmp/hami-dra-strace.XXXXXX)
trap 'rm -f "$trace"' EXIT
strace -f -qq -o "$trace" "$@" || true

# The allowlist: every quoted name in sandbox_syscalls_allowed[] and the conditional rules.
allowed=$(sed -n '/sandbox_syscalls_allowed\[\] = {/,/^};/p; /seccomp_add_conditional/,/^}/p' src/sandbox.c |
        grep -o '"[a-z0-9_]*"' | tr -d '"' | sort -u)
awk '{ sub(/^[0-9]+ +/, ""); if (match($0, /^[a-z_0-9]+\(/)) print substr($0, 1, RLENGTH - 1) }' "$trace" |
        sort | uniq -c | sort -rn | while read -r n name; do
                if grep -qx "$name" <<<"$allowed"; then mark=""; else mark="   <- NOT in the allowlist"; fi
                # The calls made before sandbox_apply() (start-up) need not be allowed later.
                printf '%8d %s%s\n' "$n" "$name" "$mark"
        done
