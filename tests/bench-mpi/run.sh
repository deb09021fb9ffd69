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

c_sm=$($mpirun -np 3 "$bench") || { echo "mpi_bench failed" >&2; exit 1; }
c_tcp=$($mpirun -np 3 --mca btl tcp,self "$bench" rtt) || { echo "mpi_bench (tcp) failed" >&2; exit 1; }
if "$py" -c 'import mpi4py.futures' 2>/dev/null; then
    p=$($mpirun -np 3 "$py" -m mpi4py.futures "$here/mpi4py_bench.py" 2>/dev/null) || p=""
    [ -n "$p" ] || p="(mpi4py.futures failed)"
else
    p="(no mpi4py for $py: apt-get install python3-mpi4py)"
fi
get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2; exit }'; }
printf '  MPI backend vs mpi4py.futures, 3 ranks (rank 0 + 2 serving)\n'
printf '  %-26s %14s %14s %8s\n' figure libexecutor mpi4py ratio
for k in submit_wait map; do
    a=$(get "$c_sm" $k); b=$(get "$p" $k)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    printf '  %-26s %14s %14s %8s\n' "$k (per s)" "$a" "${b:--}" "$r"
done
for k in rtt_p50 rtt_p99; do
    a=$(get "$c_sm" $k); b=$(get "$p" $k)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx", b / a; else print "-" }')
    printf '  %-26s %14s %14s %8s\n' "$k (us)" "$a" "${b:--}" "$r"
done
printf '  %-26s %14s\n' "rtt_p50 over tcp (us)" "$(get "$c_tcp" rtt_p50)"
printf '  %-26s %14s\n' "rtt_p99 over tcp (us)" "$(get "$c_tcp" rtt_p99)"
printf '  %s\n' "$(printf '%s\n' "$c_sm" | grep '^primes')"
case $p in
"("*) printf '  mpi4py: %s\n' "$p" ;;
esac
