#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh MPI_BENCH - the MPI backend's benchmark beside mpi4py.futures (make bench runs it
# when Open MPI is there). $MPIRUN is the launcher with its options (the Makefile's, e.g.
# "mpirun --oversubscribe --allow-run-as-root"). Both run with 3 ranks, first with Open
# MPI's default transports (shared memory), then the C one again over TCP (--mca btl
# tcp,self). mpi4py.futures is /usr/bin/python3's (Debian python3-mpi4py); without it that
# column says why.
set -u
bench=$1
mpirun=${MPIRUN:-mpirun}
here=$(dirname "$0")
py=/usr/bin/python3

load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
c_sm=$($mpirun -np 3 "$bench") || { echo "mpi_bench failed" >&2; exit 1; }
c_tcp=$($mpirun -np 3 --mca btl tcp,self "$bench" rtt) || { echo "mpi_bench (tcp) failed" >&2; exit 1; }
if "$py" -c 'import mpi4py.futures' 2>/dev/null; then
    p=$($mpirun -np 3 "$py" -m mpi4py.futures "$here/mpi4py_bench.py" 2>/dev/null) || p=""
    [ -n "$p" ] || p="(mpi4py.futures failed)"
else
    p="(no mpi4py for $py: apt-get install python3-mpi4py)"
fi
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }
# verdict VALUE TARGET: PASS when VALUE >= TARGET (both numbers; "-" when VALUE is missing).
verdict() {
    awk -v v="$1" -v t="$2" \
        'BEGIN { if (v == "") print "-"; else if (v + 0 >= t + 0) print "PASS"; else print "MISS" }'
}
printf '  MPI backend vs mpi4py.futures, 3 ranks (rank 0 + 2 serving)\n'
printf '  %-26s %14s %14s %8s %16s\n' figure libexecutor mpi4py ratio target
for k in submit_wait map; do
    a=$(get "$c_sm" $k); b=$(get "$p" $k)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", a / b }')
    t=100; [ $k = map ] && t=4
    printf '  %-26s %14s %14s %8s %16s\n' "$k (per s)" "$a" "${b:--}" "${r:+${r}x}" \
        ">= ${t}x $(verdict "$r" $t)"
done
for k in rtt_p50 rtt_p99; do
    a=$(get "$c_sm" $k); b=$(get "$p" $k)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx", b / a; else print "-" }')
    t=""
    q=$(awk -v a="$a" 'BEGIN { if (a > 0) print 5 / a }') # >= 1 when a <= 5 us
    [ $k = rtt_p50 ] && t="<= 5 us $(verdict "$q" 1)"
    printf '  %-26s %14s %14s %8s %16s\n' "$k (us)" "$a" "${b:--}" "$r" "$t"
done
printf '  %-26s %14s\n' "rtt_p50 over tcp (us)" "$(get "$c_tcp" rtt_p50)"
printf '  %-26s %14s\n' "rtt_p99 over tcp (us)" "$(get "$c_tcp" rtt_p99)"
printf '  %s\n' "$(printf '%s\n' "$c_sm" | grep '^primes')"
case $p in
"("*) printf '  mpi4py: %s\n' "$p" ;;
esac
printf '  load average (1, 5, 15 min) before: %s, after: %s\n' "${load0:-?}" \
    "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo ?)"
