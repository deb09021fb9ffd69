# SPDX-License-Identifier: MIT
"""mpi4py_bench.py - the anchor of the MPI backend's benchmark: the same figures measured
with mpi4py.futures.MPIPoolExecutor (run by tests/bench-mpi/run.sh as
`mpirun -np 3 /usr/bin/python3 -m mpi4py.futures mpi4py_bench.py`: rank 0 runs this, ranks
1-2 serve). Prints "name value unit" lines like mpi_bench.c. Fewer items than the C run
(mpi4py is slower), as rates."""
import sys
import time

from mpi4py.futures import MPIPoolExecutor, wait


def noop():
    return None


def inc(v):
    return v + 1


def main():
    n_submit = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    n_map = int(sys.argv[2]) if len(sys.argv) > 2 else 2000000
    with MPIPoolExecutor() as ex:
        ex.submit(noop).result()  # the workers are up
        t0 = time.monotonic()
        fs = [ex.submit(noop) for _ in range(n_submit)]
        wait(fs)
        print("submit_wait %.0f tasks/s" % (n_submit / (time.monotonic() - t0)))
        t0 = time.monotonic()
        out = list(ex.map(inc, range(n_map), chunksize=1000))
        assert out[-1] == n_map
        print("map %.0f items/s" % (n_map / (time.monotonic() - t0)))
        v = []
        for i in range(600):
            t0 = time.monotonic()
            ex.submit(noop).result()
            if i >= 100:
                v.append((time.monotonic() - t0) * 1e6)
        v.sort()
        print("rtt_p50 %.1f us\nrtt_p99 %.1f us" % (v[len(v) // 2], v[len(v) * 99 // 100]))


if __name__ == "__main__":
    main()
