#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The journal catalog explains every audit MESSAGE_ID of src/prepare.h, and journalctl
# can compile it (in a private root, never the host's database).
set -euo pipefail
SRC=${HAMI_DRA_SOURCE_ROOT:?}
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/usr/lib/systemd/catalog" "$ROOT/var/lib/systemd/catalog"
cp "$SRC/catalog/hami-dra.catalog" "$ROOT/usr/lib/systemd/catalog/"
journalctl --root="$ROOT" --update-catalog
LIST=$(journalctl --root="$ROOT" --list-catalog)
fail=0
for id in $(grep -oE '"[0-9a-f]{32}"' "$SRC/src/prepare.h" | tr -d '"'); do
        grep -q "^$id hami-dra: " <<<"$LIST" || grep -q "^$id " <<<"$LIST" || { echo "MESSAGE_ID $id is not in the catalog"; fail=1; }
done
want=$(grep -cE '^#define HAMI_MESSAGE_\w+ "[0-9a-f]{32}"' "$SRC/src/prepare.h")
[ "$(grep -c '^-- ' "$SRC/catalog/hami-dra.catalog")" = "$want" ] || { echo "expected $want catalog entries"; fail=1; }
echo "$LIST"
exit $fail
