/* SPDX-License-Identifier: MIT */
/*
 * 12_progress.c - a progress bar for a long exec_map().
 *
 * The progress callback runs on the thread that called exec_map() (never on a worker), at
 * most once per progress_interval_ms, plus a final call when all items are done. The bar is
 * drawn only when stdout is a terminal; otherwise the program prints one plain line at the
 * end, so its output is stable in logs and tests.
 */
#include <executor.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define N 4000000

/* One item: a little floating-point work so the map takes about a second. */
static int item(const void *in, size_t in_size, void *out, size_t out_cap, size_t *out_size)
{
    (void)in_size, (void)out_cap, (void)out_size;
    double x = (double)*(const int32_t *)in, s = 0;
    for (int k = 1; k < 64; k++)
        s += sqrt(x + k);
    *(double *)out = s;
    return 0;
}

static void progress(size_t done, size_t total, void *user_data)
{
    (void)user_data;
    int width = 40, filled = (int)(width * done / total);
    printf("\r[%.*s%*s] %3zu%%", filled, "########################################",
           width - filled, "", 100 * done / total);
    fflush(stdout);
}

int main(void)
{
    int32_t *in = malloc(N * sizeof *in);
    double *out = malloc(N * sizeof *out);
    if (!in || !out)
        return 1;
    for (int32_t i = 0; i < N; i++)
        in[i] = i;

    exec_t *ex;
    if (exec_create(&ex, NULL) != 0)
        return 1;
    exec_map_opts_t opts = {0};
    opts.chunk_size = 20000; /* small chunks: the bar moves smoothly */
    if (isatty(STDOUT_FILENO)) {
        opts.progress = progress;
        opts.progress_interval_ms = 50;
    }
    int r = exec_map(ex, item, in, sizeof *in, out, sizeof *out, N, &opts);
    exec_destroy(ex);
    if (opts.progress)
        printf("\n");
    printf("mapped %d items: %s, %zu failed\n", N, exec_strerror(r), opts.failed);
    free(in);
    free(out);
    return r != 0;
}
