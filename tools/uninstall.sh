#!/bin/bash
# Remove what `meson install -C BUILD` installed, and leave nothing behind:
#   tools/uninstall.sh [BUILD]      (default: build)
# 1. on the running system (no DESTDIR): stop and disable the units;
# 2. remove every file of BUILD's install log (meson-logs/install-log.txt, which holds
#    the paths of the last install, DESTDIR included);
# 3. remove the directories that install created, once empty; /etc/hami-dra keeps the
#    files an administrator added, and says so;
# 4. rebuild the journal's catalog (without our entries) and reload systemd's units.
# State (/var/lib/hami-dra) is the administrator's to remove: see docs/install.md.
set -euo pipefail
build=${1:-build}
log=$build/meson-logs/install-log.txt
root=${DESTDIR:-}
if [ ! -f "$log" ]; then
        echo "uninstall: $log not found: nothing was installed from $build" >&2
        exit 1
fi

booted() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

if booted; then
        for u in hami-dra-plugin.socket hami-dra-plugin-dra.socket hami-dra-plugin.service hami-dra-webhook.service; do
                systemctl disable --now "$u" 2>/dev/null || true
        done
fi

# The log lists the files, then the directories the install created, deepest first.
mapfile -t entries < <(grep -v '^#' "$log")
removed=0
for f in "${entries[@]}"; do
        if [ -L "$f" ] || [ -f "$f" ]; then
                rm -f -- "$f"
                removed=$((removed + 1))
        fi
done
for d in "${entries[@]}"; do
        [ -d "$d" ] && [ ! -L "$d" ] || continue
        rmdir -- "$d" 2>/dev/null && continue
        case $(basename "$d") in
        *hami-dra*)
                echo "uninstall: kept $d, which holds files not installed by meson:" >&2
                find "$d" -mindepth 1 -maxdepth 2 | sed 's/^/  /' >&2 ;;
        esac
done

if [ -n "$root" ]; then
        # A tree made with --destdir: its catalog database, if one was built there.
        # journalctl keeps the old database when no catalog is left ("No items in
        # catalog"), so then the database, which held only ours, goes.
        db=$root/var/lib/systemd/catalog/database
        if [ -f "$db" ]; then
                if compgen -G "$root/usr/lib/systemd/catalog/*.catalog" >/dev/null ||
                   compgen -G "$root/etc/systemd/catalog/*.catalog" >/dev/null; then
                        journalctl --root="$root" --update-catalog
                else
                        rm -f -- "$db"
                        d=$(dirname "$db")
                        while [ "$d" != "$root" ] && rmdir -- "$d" 2>/dev/null; do
                                d=$(dirname "$d")
                        done
                fi
        fi
elif command -v journalctl >/dev/null; then
        journalctl --update-catalog || echo "warning: journalctl --update-catalog failed" >&2
fi
booted && systemctl daemon-reload
echo "uninstall: removed $removed files"
