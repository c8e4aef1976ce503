/*
 * libFuzzer target: a spool segment left by a previous process (possibly
 * cut by a crash, or damaged on disk) replayed into a queue, then
 * acknowledged. No crash, no read past a frame or the file, memory bounded
 * by the file's size; the segment is deleted once acknowledged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../modules/logs/logs_queue.c"
#include "../../modules/logs/logs_replay.c"
#include "../../modules/logs/logs_spool.c"

static char dir[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/logs-replay-fuzz-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    char seg[128];
    snprintf(seg, sizeof seg, "%s/spool-7.seg", dir);
    FILE *f = fopen(seg, "w");
    if (!f)
        abort();
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);
    struct logs_replay r;
    logs_replay_init(&r);
    if (logs_replay_add_dir(&r, dir))
        abort();
    struct logs_queue q;
    logs_queue_init(&q, 1 << 20, 4096, 1);
    for (int i = 0; i < 1000 && !logs_replay_pump(&r, &q, 16, 0); i++)
        logs_queue_ack(&q, 0, q.next_seq);
    logs_queue_seal(&q);
    logs_queue_ack(&q, 0, q.next_seq);
    if (access(seg, F_OK) == 0)
        abort(); /* everything acknowledged: the segment must be gone */
    logs_queue_fini(&q);
    logs_replay_fini(&r);
    return 0;
}
