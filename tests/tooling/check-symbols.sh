#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-symbols.sh LIB.so [LIB.a ...] - fail unless every symbol LIB.so exports is public API:
# exec_ followed by a letter or digit (exec__* names are internal and must stay hidden), and
# unless no library given carries a test-only hook (exec__fault_*, exec__test_*; see
# src/base/fault.h), hidden or not. Uses $NM (default nm). Prints the offending symbols.
set -eu

lib=${1:?usage: check-symbols.sh LIB.so [LIB.a ...]}
[ -n "$lib" ]
nm_tool=${NM:-nm}

for l in "$@"; do
    hooks=$("$nm_tool" -A "$l" 2>/dev/null | grep -E 'exec__(fault|test)_' || true)
    if [ -n "$hooks" ]; then
        echo "check-symbols: $l carries test-only hooks:" >&2
        printf '    %s\n' "$hooks" >&2
        exit 1
    fi
done

for lib in "$@"; do
    case $lib in *.a) continue ;; esac
    syms=$("$nm_tool" -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//' | sort -u)
    if [ -z "$syms" ]; then
        echo "check-symbols: $lib exports no symbol at all" >&2
        exit 1
    fi
    bad=$(printf '%s\n' "$syms" | grep -v '^exec_[A-Za-z0-9]' || true)
    if [ -n "$bad" ]; then
        echo "check-symbols: $lib exports symbols outside the exec_* API:" >&2
        printf '    %s\n' $bad >&2
        exit 1
    fi
    echo "check-symbols: $(printf '%s\n' "$syms" | wc -l | tr -d ' ') symbols, all exec_*"
done
