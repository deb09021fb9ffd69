#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check-symbols.sh LIB.so - fail unless every symbol LIB.so exports is public API: exec_
# followed by a letter or digit (exec__* names are internal and must stay hidden).
# Uses $NM (default nm). Prints the offending symbols.
set -eu

lib=${1:?usage: check-symbols.sh LIB.so}
nm_tool=${NM:-nm}

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
