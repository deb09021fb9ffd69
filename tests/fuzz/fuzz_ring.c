/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring.c - libFuzzer target: everything the parent of a process pool reads from a
 * worker, as the supervisor reads it (process/decode.c, process/ring.c): the framing of a
 * completion ring (positions, message sizes, PAD messages), completion headers checked
 * against the requests in flight, the payloads they point at (task results, map chunk
 * results and statuses), and the progress words a worker that died in a map chunk left.
 *
 * The input is a description of the requests in flight followed by the ring's bytes, which
 * live in a heap block of exactly the ring's size, so AddressSanitizer sees any read outside
 * it. The loop is drain()'s (process/supervise.c): read a batch, check each completion
 * against the oldest request, act on it, stop at the first bad one.
 *
 * Layout: [0] ring size 64 << (b & 7); [1] requests in flight (b % 9), then per request 3
 * bytes (kind bit, items 1..16, result size 0..31); 8 bytes first request number; 8 bytes
 * consumer position; 8 bytes producer position; 2 bytes max result size; 24 bytes progress
 * words (map_seq, map_done, map_cmp); the rest is the ring's data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/map.h"
#include "process/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct input *in, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v |= (uint64_t)(in->n ? *in->p : 0) << (8 * i);
        if (in->n) {
            in->p++;
            in->n--;
        }
    }
    return v;
}

/* Read every byte of @p (a sum the compiler must compute), for the sanitizers to see. */
static volatile unsigned sink;
static void touch(const unsigned char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    sink += s;
}

#define NFLIGHT 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    uint64_t cap = (uint64_t)64 << (take(&in, 1) & 7);
    uint32_t nflight = (uint32_t)(take(&in, 1) % (NFLIGHT + 1));
    struct exec__map maps[NFLIGHT];
    struct ent ents[NFLIGHT];
    memset(maps, 0, sizeof maps);
    memset(ents, 0, sizeof ents);
    for (uint32_t i = 0; i < nflight; i++) {
        uint64_t d = take(&in, 3);
        ents[i].kind = d & 1 ? EXEC__REQ_MAP : EXEC__REQ_TASK;
        ents[i].lo = (size_t)(d >> 8 & 0xff);
        ents[i].hi = ents[i].lo + 1 + (size_t)(d >> 1 & 15);
        maps[i].out_size = (size_t)(d >> 16 & 31);
        if (ents[i].kind == EXEC__REQ_MAP && !(d & 0x800000))
            ents[i].map = &maps[i]; /* else: a chunk taken back, its map gone */
    }
    uint64_t seq0 = take(&in, 8);
    for (uint32_t i = 0; i < nflight; i++)
        ents[i].seq = seq0 + i;
    uint64_t head = take(&in, 8) & ~(uint64_t)15; /* our own position: always aligned */
    uint64_t tail = take(&in, 8);
    size_t max_result = (size_t)take(&in, 2);
    uint64_t map_seq = take(&in, 8), map_done = take(&in, 8), map_cmp = take(&in, 8);

    struct exec__ring *r = aligned_alloc(64, sizeof *r);
    unsigned char *ring = malloc((size_t)cap);
    if (!r || !ring)
        abort();
    memset(ring, 0, (size_t)cap);
    memcpy(ring, in.p, in.n < cap ? in.n : (size_t)cap);
    exec__ring_init(r, cap);
    atomic_store(&r->head, head);
    atomic_store(&r->tail, tail);
    struct exec__rq q;
    exec__rq_attach(&q, r, ring, false);

    unsigned char *result = malloc(max_result + 1);
    uint32_t first = 0; /* the oldest request in flight */
    struct exec__cmpv cv[4];
    for (int round = 0; round < 1000; round++) {
        uint32_t n = exec__pp_cmp_read(&q, cv, 4);
        for (uint32_t i = 0; i < n; i++) {
            const struct exec__cmp *c = &cv[i].h;
            struct ent *e = first < nflight ? &ents[first] : NULL;
            if (!exec__pp_cmp_ok(&cv[i], e, max_result)) {
                q.bad = true;
                break;
            }
            if (c->h.kind != EXEC__CMP_DONE && c->h.kind != EXEC__CMP_SKIP)
                continue;
            first++;
            if (c->h.kind != EXEC__CMP_DONE)
                continue;
            const unsigned char *res = cv[i].msg + sizeof *c;
            if (e->kind == EXEC__REQ_TASK && c->code == EXEC_OK) {
                memcpy(result, res, (size_t)c->size); /* finish_done() */
            } else if (e->map) { /* drain(), then exec__pp_chunk_results() */
                size_t count = e->hi - e->lo;
                touch(res, count * e->map->out_size);
                if (c->nfailed) {
                    const int32_t *st =
                        (const int32_t *)(res + exec__ring_round(count * e->map->out_size));
                    int32_t s = 0;
                    for (size_t k = 0; k < count; k++)
                        s |= st[k];
                    sink += (unsigned)s;
                }
            }
            if (cv[i].msize >= 64)
                touch(cv[i].msg, cv[i].msize);
        }
        if (!n || q.bad)
            break;
        exec__rq_release(&q);
    }

    /* The worker died in the middle of the first map chunk in flight: chunk_lost(). */
    for (uint32_t i = 0; i < nflight; i++) {
        struct ent *e = &ents[i];
        if (!e->map)
            continue;
        size_t count = e->hi - e->lo, res_bytes = exec__ring_round(count * e->map->out_size);
        size_t k = exec__pp_chunk_done(e, e->map->out_size, map_seq & 1 ? e->seq : map_seq,
                                       map_done, map_cmp, cap);
        if (k) {
            const unsigned char *res = ring + map_cmp + sizeof(struct exec__cmp);
            touch(res, k * e->map->out_size);
            const int32_t *st = (const int32_t *)(res + res_bytes);
            int32_t s = 0;
            for (size_t j = 0; j < k; j++)
                s |= st[j];
            sink += (unsigned)s;
        }
        break;
    }
    free(result);
    free(ring);
    free(r);
    return 0;
}
