/*
 * logs_replay: segments a previous process left in its spool are read back
 * into the queue: live frames only, only their runs (records no source
 * keeps), a cut frame ends the segment; delivered frames are marked done and
 * a segment is deleted once all of it was acknowledged.
 */
#include "tap.h"

#include "../../modules/logs/logs_queue.c"
#include "../../modules/logs/logs_replay.c"
#include "../../modules/logs/logs_spool.c"

#include <dirent.h>

static char tmpdir[] = "/tmp/logs-replay-XXXXXX";

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += logs_spool_seg_id(e->d_name) >= 0;
    if (d)
        closedir(d);
    return n;
}

static void nop(void *src)
{
}
static void nop_ack(void *src, uint64_t a, uint64_t b)
{
}
static const struct logs_source_ops file_ops = {.ack = nop_ack, .ref = nop, .unref = nop, .kept_by_source = true};

/* The queue's bytes in memory, every chunk concatenated. */
static void queue_text(struct logs_queue *q, struct logs_buf *out)
{
    out->n = 0;
    for (struct logs_chunk *c = q->head; c; c = c->next)
        if (logs_queue_load(q, c) == 0)
            logs_buf_append(out, c->data.p, c->data.n);
    logs_buf_append(out, "", 1);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/spool-0", tmpdir);

    /* A first process: chunks with bus records are written when sealed,
     * file lines are in no run; one chunk is delivered, the rest is not. */
    struct logs_spool sp;
    is_int(logs_spool_open(&sp, dir, 1 << 20, 65536), 0, "spool opens");
    struct logs_queue q;
    logs_queue_init(&q, 1 << 20, 4096, 1);
    logs_queue_set_spool(&q, &sp, LOGS_DROP_NEWEST);
    logs_queue_push(&q, "{\"bus\":1}\n", 10, NULL, NULL, 0, 0, 0);
    logs_queue_seal(&q);
    ok(q.head && q.head->on_disk, "a chunk with a bus record is on disk once sealed");
    logs_queue_ack(&q, 0, q.next_seq); /* delivered: its frame is marked done */
    logs_queue_push(&q, "{\"file\":1}\n", 11, &file_ops, &q, 1, 0, 0);
    logs_queue_seal(&q);
    ok(!q.tail->on_disk, "a chunk of file lines only is not written");
    logs_queue_push(&q, "{\"bus\":2}\n", 10, NULL, NULL, 0, 0, 0);
    logs_queue_push(&q, "{\"file\":2}\n", 11, &file_ops, &q, 2, 0, 0);
    logs_queue_push(&q, "{\"bus\":3}\n", 10, NULL, NULL, 0, 0, 0);
    logs_queue_seal(&q);
    ok(q.tail->on_disk && q.tail->n_runs == 2, "a mixed chunk: two runs (%u)", q.tail->n_runs);
    logs_queue_fini(&q);
    logs_spool_close(&sp);
    is_int(count_segments(dir), 1, "the undelivered segment is kept at close");

    /* A crash in the middle of a frame: a cut header at the end. */
    char seg[512];
    snprintf(seg, sizeof seg, "%s/spool-0.seg", dir);
    FILE *f = fopen(seg, "a");
    fputs("OTRSL", f);
    fclose(f);

    /* The next process: its own segments are numbered after the old one. */
    struct logs_replay r;
    logs_replay_init(&r);
    is_int(logs_replay_add_dir(&r, dir), 0, "segments found");
    is_int(r.n_segs, 1, "one segment to replay");
    is_int(logs_spool_open(&sp, dir, 1 << 20, 65536), 0, "spool opens again");
    is_int(sp.next_id, 1, "new segments numbered after the old ones");
    logs_queue_init(&q, 1 << 20, 4096, 1);
    logs_queue_set_spool(&q, &sp, LOGS_DROP_NEWEST);
    ok(logs_replay_pump(&r, &q, 100, 0), "every segment read");
    logs_queue_seal(&q);
    struct logs_buf text = {0};
    queue_text(&q, &text);
    is_str(text.p, "{\"bus\":2}\n{\"bus\":3}\n", "only the undelivered bus records are replayed");
    is_int(r.records, 2, "2 records");
    is_int(r.bad_frames, 1, "the cut frame is counted");
    ok(!q.tail->on_disk, "replayed records are not written to the spool again");
    is_int(count_segments(dir), 1, "the segment stays until acknowledged");
    logs_queue_ack(&q, 0, q.next_seq);
    is_int(count_segments(dir), 0, "acknowledged: the segment is deleted");
    logs_buf_free(&text);
    logs_queue_fini(&q);
    logs_replay_fini(&r);
    logs_spool_close(&sp);

    /* A partial acknowledgement marks the delivered frames done. */
    is_int(logs_spool_open(&sp, dir, 1 << 20, 65536), 0, "spool opens");
    logs_queue_init(&q, 1 << 20, 4096, 1);
    logs_queue_set_spool(&q, &sp, LOGS_DROP_NEWEST);
    for (int i = 0; i < 3; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "{\"bus\":%d}\n", 10 + i);
        logs_queue_push(&q, line, (size_t)n, NULL, NULL, 0, 0, 0);
        logs_queue_seal(&q);
    }
    logs_queue_fini(&q);
    logs_spool_close(&sp);
    logs_replay_init(&r);
    logs_replay_add_dir(&r, dir);
    logs_queue_init(&q, 1 << 20, 4096, 1);
    logs_replay_pump(&r, &q, 1, 0); /* one frame */
    logs_queue_seal(&q);
    logs_queue_ack(&q, 0, q.next_seq);
    logs_queue_fini(&q);
    logs_replay_fini(&r);
    logs_replay_init(&r);
    logs_replay_add_dir(&r, dir);
    logs_queue_init(&q, 1 << 20, 4096, 1);
    logs_replay_pump(&r, &q, 100, 0);
    logs_queue_seal(&q);
    queue_text(&q, &text);
    is_str(text.p, "{\"bus\":11}\n{\"bus\":12}\n", "after a crash, the delivered frame is not replayed again");
    logs_queue_ack(&q, 0, q.next_seq);
    is_int(count_segments(dir), 0, "all acknowledged: deleted");
    logs_buf_free(&text);
    logs_queue_fini(&q);
    logs_replay_fini(&r);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd))
        diag("cleanup failed");
    return done_testing();
}
