#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-sizes.sh [SRC_DIR] - fail when a file under src/ has more than 800 lines or a function
# more than 100 (STYLE: one concern per file, functions that fit on a screen or two). A
# function is counted from its first line at column 0 to the closing brace at column 0.
set -eu

src=${1:-src}
status=0
for f in $(find "$src" -name '*.[ch]' | sort); do
    n=$(wc -l < "$f")
    if [ "$n" -gt 800 ]; then
        echo "check-sizes: $f has $n lines (at most 800)" >&2
        status=1
    fi
    awk -v file="$f" '
        /^[A-Za-z_].*\(/ && !/;[[:space:]]*$/ { start = NR; name = $0 }
        /^\{/ && start { open = start }
        /^\}/ && open {
            len = NR - open + 1
            if (len > 100) {
                printf "check-sizes: %s:%d: a function of %d lines (at most 100): %s\n", file, open, len, name > "/dev/stderr"
                bad = 1
            }
            open = 0; start = 0
        }
        END { exit bad }' "$f" || status=1
done
[ $status = 0 ] && echo "check-sizes: every file of src/ within 800 lines, every function within 100"
exit $status
