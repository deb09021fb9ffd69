/* SPDX-License-Identifier: MIT */
/*
 * fuzz_zygote.c - libFuzzer target: the zygote protocol (process/proto.h). Each input is a
 * run of datagrams, each sent through a real SOCK_SEQPACKET pair like the control socket
 * and received with exec__zrecv(), which takes only a datagram of exactly one message. What
 * arrives is checked both ways with exec__zmsg_ok(): as an event the parent's supervisor
 * reads (read_events() in process/supervise.c) and as a command the zygote reads (spawn() in
 * process/zygote.c). A message that passes must be one the receiver can act on safely: its
 * slot and region index address the slot table, its pid names a process, its signal exists.
 *
 * Layout: [0] slots 1..256; then datagrams, each a length byte (0..31) and that many bytes.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "process/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sv[2] = {-1, -1};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sv[0] < 0 && exec__seqpacket_pair(sv) != 0)
        abort();
    if (size < 1)
        return 0;
    int nslots = 1 + data[0];
    size_t i = 1;
    while (i < size) {
        size_t len = data[i++] & 31;
        if (len > size - i)
            len = size - i;
        if (exec__dgram_send(sv[1], data + i, len, true) != 0)
            abort(); /* an empty socket takes one small datagram */
        i += len;
        struct exec__zmsg m;
        memset(&m, 0xa5, sizeof m);
        int r = exec__zrecv(sv[0], &m, true);
        if (r == 0)
            abort(); /* it was sent: it must be there */
        if (r < 0) {
            if (len == sizeof m)
                abort(); /* a whole message must be accepted */
            continue;    /* the parent treats this as the zygote lost, the zygote as QUIT */
        }
        if (len != sizeof m)
            abort();
        if (exec__zmsg_ok(&m, true, nslots)) {
            /* The supervisor indexes its slots with it and keeps the pid. */
            if (m.slot < 0 || m.slot >= nslots)
                abort();
            if (m.op == EXEC__Z_SPAWNFAIL ? m.arg <= 0
                                          : m.pid <= 0 || (m.op != EXEC__Z_SPAWNED &&
                                                           m.op != EXEC__Z_EXITED))
                abort();
        }
        if (exec__zmsg_ok(&m, false, nslots)) {
            if (m.op == EXEC__Z_SPAWN &&
                (m.slot < 0 || m.slot >= nslots || m.rix < 0 || m.rix > 1))
                abort(); /* would index wctx[slot * 2 + rix] out of bounds */
            if (m.op == EXEC__Z_KILL && (m.pid <= 0 || m.arg <= 0 || m.arg >= NSIG))
                abort();
            if (m.op != EXEC__Z_SPAWN && m.op != EXEC__Z_KILL && m.op != EXEC__Z_QUIT)
                abort();
        }
    }
    return 0;
}
