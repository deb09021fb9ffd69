#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-layers.sh [SRC_DIR] - fail when a file under src/ includes a project header that its
# part may not see (docs/internals.md, "Arrows"). Parts are the folders of src/:
#   base/    building blocks              may include base/
#   sys/     platform layer               may include base/ sys/
#   core/    front, futures, map driver   may include base/ sys/ core/
#   shm/     shared-memory buffer helper  may include base/ sys/ shm/
#   any other folder is a backend         may include base/ sys/ core/ shm/shm.h and its own
# So the core includes no backend, no backend includes another, and sys/ knows no executor.
# The public header "executor.h" may be included anywhere.
set -eu

src=${1:-src}
status=0
for f in $(find "$src" -name '*.[ch]' | sort); do
    rel=${f#"$src"/}
    part=${rel%%/*}
    case $part in
    base) allow='base' ;;
    sys) allow='base sys' ;;
    core) allow='base sys core' ;;
    shm) allow='base sys shm' ;;
    mpi) allow='base sys core mpi shm/shm.h executor_mpi.h' ;;
    *.c | *.h | *.in) continue ;;
    *) allow="base sys core $part shm/shm.h" ;;
    esac
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        [ "$inc" = executor.h ] && continue
        ok=no
        for a in $allow; do
            case $inc in
            "$a" | "$a"/*) ok=yes ;;
            esac
        done
        if [ $ok = no ]; then
            echo "check-layers: $rel includes \"$inc\": $part/ may include only: $allow" >&2
            status=1
        fi
    done
done
[ $status = 0 ] && echo "check-layers: every include of src/ follows the arrows"
exit $status
