#!/bin/sh
# SPDX-License-Identifier: MIT
#
# extract-c-blocks.sh [-1] FILE.md OUTDIR - write every ```c fenced block of FILE.md to
# OUTDIR/<file>-<n>.c (n = 1, 2, ...) and print the paths written, one per line.
# -1: only the first block.
# Each file starts with a #line directive, so compiler messages point into FILE.md.
# Exit status: 0 when at least one block was written; 1 when FILE.md has no ```c block;
# 2 on an unterminated block or a usage error.
set -eu

first=0
if [ "${1:-}" = "-1" ]; then
    first=1
    shift
fi
if [ $# -ne 2 ]; then
    echo "usage: extract-c-blocks.sh [-1] FILE.md OUTDIR" >&2
    exit 2
fi
md=$1
if [ ! -r "$md" ]; then
    echo "extract-c-blocks: cannot read $md" >&2
    exit 2
fi
out=$2
base=$(basename "$md" .md)

awk -v out="$out" -v base="$base" -v md="$md" -v first="$first" '
    !inblock && /^[ \t]*```[ \t]*c[ \t]*$/ {
        n++
        inblock = 1
        file = sprintf("%s/%s-%d.c", out, base, n)
        printf "#line %d \"%s\"\n", NR + 1, md > file
        next
    }
    inblock && /^[ \t]*```[ \t]*$/ {
        inblock = 0
        close(file)
        print file
        if (first)
            exit 0
        next
    }
    inblock { print > file }
    END {
        if (inblock) {
            printf "extract-c-blocks: %s: unterminated ```c block\n", md > "/dev/stderr"
            exit 2
        }
        if (n == 0) {
            printf "extract-c-blocks: %s: no ```c block\n", md > "/dev/stderr"
            exit 1
        }
    }
' "$md"
