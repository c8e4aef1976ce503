/*
 * logs_tail: real files in a temporary directory, a real libuv loop.
 * Head and tail starts, discovery of new files, rotation by rename and by
 * copytruncate interleaved with a writer (every line exactly once, in
 * order), a file deleted while open, huge lines, checkpoints and restarts
 * (also with the file rotated away while stopped).
 */
#include "tap.h"

#include "../../modules/logs/logs_checkpoint.c"
#include "../../modules/logs/logs_tail.c"

#include <sys/stat.h>

static char dir[256];

struct seen {
    uint64_t n;          /* lines received */
    uint64_t next;       /* next expected line number */
    uint64_t bad;        /* out of order or duplicate */
    uint64_t cut;        /* pieces shorter than a line because of max_line */
    bool ack;            /* acknowledge every line at once */
    int opens, closes;
    char last[256];
};

static void on_open(void *arg, struct logs_file *f)
{
    ((struct seen *)arg)->opens++;
}

static void on_close(void *arg, struct logs_file *f)
{
    ((struct seen *)arg)->closes++;
}

/* Lines are "line <n> ..." numbered from 1 across all files. */
static void on_line(void *arg, struct logs_file *f, const char *p, size_t n, uint64_t start, uint64_t end)
{
    struct seen *s = arg;
    s->n++;
    size_t k = n < sizeof s->last - 1 ? n : sizeof s->last - 1;
    memcpy(s->last, p, k);
    s->last[k] = 0;
    unsigned long long num;
    if (sscanf(s->last, "line %llu", &num) == 1) {
        if (num != s->next + 1) {
            if (s->bad < 5)
                diag("expected line %llu, got %llu", (unsigned long long)s->next + 1, num);
            s->bad++;
        }
        s->next = num;
    } else {
        s->cut++;
    }
    if (s->ack)
        logs_file_ack(f, f->epoch, end);
}

static const struct logs_tail_cb cbs = {.open = on_open, .line = on_line, .close = on_close};

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static void append(const char *name, uint64_t from, uint64_t to)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "a");
    for (uint64_t i = from; i <= to; i++)
        fprintf(f, "line %llu payload payload payload\n", (unsigned long long)i);
    fclose(f);
}

static void run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, int ms)
{
    uint64_t deadline = uv_now(loop) + (uint64_t)ms;
    while (!cond(arg) && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
}

struct want {
    struct seen *s;
    uint64_t n;
};
static bool got_next(void *arg)
{
    struct want *w = arg;
    return w->s->next >= w->n;
}

static void stopped(struct logs_tailer *t)
{
    (void)t;
}

static void tailer_run(uv_loop_t *loop, struct logs_tailer *t, const char *pattern, bool head, struct seen *s,
                       const char *ckpt)
{
    static const char *pats[1];
    pats[0] = pattern;
    struct logs_tail_conf c = {.paths = pats, .n_paths = 1, .from_head = head, .poll_ms = 20, .rescan_ms = 50,
                               .rotate_wait_ms = 100, .checkpoint_ms = 50, .read_size = 4096, .max_line = 1000,
                               .checkpoint_path = ckpt};
    struct logs_tail_cb cb = cbs;
    cb.arg = s;
    logs_tailer_init(t, loop, &c, &cb);
    int rc = logs_tailer_start(t);
    if (rc)
        diag("start: %s", uv_strerror(rc));
}

static void tailer_end(uv_loop_t *loop, struct logs_tailer *t)
{
    logs_tailer_stop(t, stopped);
    uv_run(loop, UV_RUN_DEFAULT);
    logs_tailer_fini(t);
}

static void test_head_tail_discovery(uv_loop_t *loop)
{
    char pat[512];
    path_of(pat, sizeof pat, "a*.log");
    append("a1.log", 1, 100);
    struct seen s = {0};
    struct logs_tailer t;
    tailer_run(loop, &t, pat, true, &s, NULL);
    struct want w = {&s, 100};
    run_until(loop, got_next, &w, 3000);
    is_int(s.next, 100, "head: existing file read from the start");
    append("a1.log", 101, 150);
    w.n = 150;
    run_until(loop, got_next, &w, 3000);
    is_int(s.next, 150, "appended lines read");
    append("a2.log", 151, 160);
    w.n = 160;
    run_until(loop, got_next, &w, 3000);
    is_int(s.next, 160, "new file discovered and read from its head");
    is_int(s.bad, 0, "no duplicate, none out of order");
    is_int(logs_tailer_count(&t), 2, "2 files watched");
    tailer_end(loop, &t);

    struct seen s2 = {.next = 160};
    tailer_run(loop, &t, pat, false, &s2, NULL);
    append("a1.log", 161, 170);
    w = (struct want){&s2, 170};
    run_until(loop, got_next, &w, 3000);
    is_int(s2.n, 10, "tail: only lines appended after start");
    is_int(s2.bad, 0, "in order");
    tailer_end(loop, &t);
}

/* The writer: a timer appending numbered lines and rotating the file every
 * 200 lines, alternately by rename+create and by copytruncate. */
struct writer {
    uv_timer_t timer;
    uint64_t next, total;
    int rotations, renames, truncates;
    bool pending; /* a rotation is due before the next line */
    struct logs_tailer *t;
    struct seen *s;
};

static void writer_on_tick(uv_timer_t *h)
{
    struct writer *w = h->data;
    char p[512], q[512];
    path_of(p, sizeof p, "rot.log");
    for (int k = 0; k < 20 && w->next <= w->total; k++) {
        if (!w->pending) {
            append("rot.log", w->next, w->next);
            w->pending = w->next % 200 == 0;
            w->next++;
        }
        if (!w->pending)
            continue;
        if (w->rotations++ % 2 == 0) {
            /* rename and create: the tailer still has unread lines in the
             * old file, which it must drain before the new one. */
            snprintf(q, sizeof q, "%s/rot.log.%d", dir, w->rotations);
            rename(p, q);
            w->renames++;
            w->pending = false;
        } else {
            /* copytruncate can only keep every line if the reader caught
             * up before the truncation (lines in between exist only in the
             * copy): wait for it, as logrotate users must. */
            if (w->s->next != w->next - 1) {
                w->rotations--;
                return; /* retry this rotation on the next tick */
            }
            snprintf(q, sizeof q, "%s/rot.log.%d", dir, w->rotations);
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p, q);
            if (system(cmd) != 0)
                diag("cp failed");
            if (truncate(p, 0))
                diag("truncate failed");
            w->truncates++;
            w->pending = false;
        }
    }
    if (w->next > w->total)
        uv_timer_stop(h);
}

static void test_rotation(uv_loop_t *loop)
{
    char pat[512];
    path_of(pat, sizeof pat, "rot.log");
    append("rot.log", 1, 1);
    struct seen s = {0};
    struct logs_tailer t;
    tailer_run(loop, &t, pat, true, &s, NULL);
    struct writer w = {.next = 2, .total = 4000, .t = &t, .s = &s};
    uv_timer_init(loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, writer_on_tick, 1, 1);
    struct want want = {&s, 4000};
    run_until(loop, got_next, &want, 60000);
    is_int(s.next, 4000, "every line arrived through %d renames and %d copytruncates", w.renames, w.truncates);
    is_int(s.n, 4000, "exactly once");
    is_int(s.bad, 0, "in order");
    ok(w.renames >= 8 && w.truncates >= 8, "rotated both ways many times");
    ok(t.truncations >= (uint64_t)w.truncates, "truncations detected: %llu", (unsigned long long)t.truncations);
    uv_timer_stop(&w.timer);
    uv_close((uv_handle_t *)&w.timer, NULL);
    /* Renamed files are closed once quiet for rotate_wait. */
    uint64_t deadline = uv_now(loop) + 2000;
    while (logs_tailer_count(&t) > 1 && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    is_int(logs_tailer_count(&t), 1, "rotated files closed after rotate_wait");
    tailer_end(loop, &t);
}

static void test_deleted_and_huge(uv_loop_t *loop)
{
    char pat[512], p[512];
    path_of(pat, sizeof pat, "del.log");
    path_of(p, sizeof p, "del.log");
    append("del.log", 1, 10);
    struct seen s = {0};
    struct logs_tailer t;
    tailer_run(loop, &t, pat, true, &s, NULL);
    /* Open but not read yet: grow and delete it before the first round. */
    append("del.log", 11, 5000);
    unlink(p);
    struct want w = {&s, 5000};
    run_until(loop, got_next, &w, 5000);
    is_int(s.next, 5000, "a file deleted while open is read to its end");
    uint64_t deadline = uv_now(loop) + 2000;
    while (logs_tailer_count(&t) && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    is_int(logs_tailer_count(&t), 0, "and then closed");
    is_int(s.closes, 1, "close callback once");
    tailer_end(loop, &t);

    path_of(pat, sizeof pat, "huge.log");
    FILE *f = fopen(pat, "w");
    for (int i = 0; i < 2500; i++)
        fputc('x', f);
    fputs("\nline 1 after\npartial without newline", f);
    fclose(f);
    struct seen h = {0};
    tailer_run(loop, &t, pat, true, &h, NULL);
    w = (struct want){&h, 1};
    run_until(loop, got_next, &w, 3000);
    is_int(h.cut, 3, "a 2500-byte line comes in 3 pieces of at most 1000");
    is_int(h.n, 4, "then the next line; the unterminated one waits");
    tailer_end(loop, &t);
}

static void test_checkpoint(uv_loop_t *loop)
{
    char pat[512], ck[512], p[512], q[512];
    path_of(pat, sizeof pat, "ck.log");
    path_of(p, sizeof p, "ck.log");
    path_of(ck, sizeof ck, "ck.state");
    append("ck.log", 1, 300);
    struct seen s = {.ack = true};
    struct logs_tailer t;
    tailer_run(loop, &t, pat, true, &s, ck);
    struct want w = {&s, 300};
    run_until(loop, got_next, &w, 3000);
    is_int(s.next, 300, "first run read 300 lines");
    tailer_end(loop, &t);

    struct logs_ckpt c = {0};
    size_t bad;
    is_int(logs_ckpt_load(&c, ck, &bad), 0, "checkpoint loads");
    is_int(c.n, 1, "one entry");
    struct stat st;
    stat(p, &st);
    is_int(c.n ? c.items[0].offset : 0, (long long)st.st_size, "offset at the end of the acknowledged lines");
    logs_ckpt_clear(&c);

    /* Restart: continues after line 300, even with from_head. */
    append("ck.log", 301, 350);
    struct seen s2 = {.ack = true, .next = 300};
    tailer_run(loop, &t, pat, true, &s2, ck);
    w = (struct want){&s2, 350};
    run_until(loop, got_next, &w, 3000);
    is_int(s2.n, 50, "restart resumed exactly after the checkpoint");
    is_int(s2.bad, 0, "no duplicate");
    tailer_end(loop, &t);

    /* Unacknowledged lines are read again after a restart. */
    append("ck.log", 351, 360);
    struct seen s3 = {.ack = false, .next = 350};
    tailer_run(loop, &t, pat, true, &s3, ck);
    w = (struct want){&s3, 360};
    run_until(loop, got_next, &w, 3000);
    tailer_end(loop, &t);
    struct seen s4 = {.ack = true, .next = 350};
    tailer_run(loop, &t, pat, true, &s4, ck);
    w = (struct want){&s4, 360};
    run_until(loop, got_next, &w, 3000);
    is_int(s4.n, 10, "unacknowledged lines delivered again");
    tailer_end(loop, &t);

    /* Rotated while stopped: the rest of the old file, then the new. */
    append("ck.log", 361, 400);
    snprintf(q, sizeof q, "%s/ck.log.1", dir);
    rename(p, q);
    append("ck.log", 401, 420);
    struct seen s5 = {.ack = true, .next = 360};
    tailer_run(loop, &t, pat, true, &s5, ck);
    w = (struct want){&s5, 420};
    run_until(loop, got_next, &w, 3000);
    is_int(s5.n, 60, "rotated-away file finished, then the new one");
    is_int(s5.bad, 0, "in order");
    tailer_end(loop, &t);

    /* A checkpoint of another file with the same inode but other content
     * (inode reuse) is not applied. */
    unlink(q);
    logs_ckpt_load(&c, ck, &bad);
    stat(p, &st);
    for (size_t i = 0; i < c.n; i++)
        c.items[i].fp_hash ^= 1;
    logs_ckpt_save(&c, ck);
    logs_ckpt_clear(&c);
    struct seen s6 = {.ack = true, .next = 400};
    tailer_run(loop, &t, pat, true, &s6, ck);
    w = (struct want){&s6, 420};
    run_until(loop, got_next, &w, 3000);
    is_int(s6.n, 20, "fingerprint mismatch: read from the head");
    tailer_end(loop, &t);

    FILE *f = fopen(ck, "w");
    fputs("outrider-logs-checkpoint 1\ngarbage\n", f);
    fclose(f);
    is_int(logs_ckpt_load(&c, ck, &bad), 0, "malformed checkpoint loads");
    is_int(bad, 1, "the bad line counted");
    logs_ckpt_clear(&c);
}

int main(void)
{
    (void)tap_is_str;
    snprintf(dir, sizeof dir, "/tmp/logs_tail.%d", (int)getpid());
    mkdir(dir, 0700);
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_head_tail_discovery(&loop);
    test_rotation(&loop);
    test_deleted_and_huge(&loop);
    test_checkpoint(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "loop closed: no handle leaked");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("cleanup failed");
    return done_testing();
}
