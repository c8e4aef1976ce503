/*
 * logs_out_file: the stdout and file outputs (JSON lines). Writes go
 * through uv_fs_write (the libuv thread pool), so a slow disk or a blocked
 * stdout pipe never stalls the loop; a batch is acknowledged once write(2)
 * took all of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logs_output.h"

struct out_file {
    uv_fs_t req;
    int fd;
    bool own_fd;
    uv_buf_t *bufs; /* the part of the batch still to write */
    size_t n;
    void (*close_done)(struct logs_output *o); /* close waits for the write */
};

static void file_write_next(struct logs_output *o);

static void file_on_write(uv_fs_t *req)
{
    struct logs_output *o = req->data;
    struct out_file *f = o->impl;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    if (r < 0) {
        logs_output_sent(o, (int)r, NULL);
        if (f->close_done)
            f->close_done(o);
        return;
    }
    /* Skip what was written; a short write continues where it stopped. */
    size_t done = (size_t)r;
    while (f->n && done >= f->bufs[0].len) {
        done -= f->bufs[0].len;
        f->bufs++;
        f->n--;
    }
    if (f->n) {
        f->bufs[0].base += done;
        f->bufs[0].len -= done;
        file_write_next(o);
        return;
    }
    logs_output_sent(o, 0, NULL);
    if (f->close_done)
        f->close_done(o);
}

static void file_write_next(struct logs_output *o)
{
    struct out_file *f = o->impl;
    size_t n = f->n > 1024 ? 1024 : f->n; /* IOV_MAX */
    int rc = uv_fs_write(o->loop, &f->req, f->fd, f->bufs, (unsigned)n, -1, file_on_write);
    if (rc)
        logs_output_sent(o, rc, NULL);
}

static void file_send(struct logs_output *o, const uv_buf_t *bufs, size_t n, size_t bytes, uint32_t records)
{
    struct out_file *f = o->impl;
    /* o->iov is ours to adjust until the batch completes. */
    f->bufs = (uv_buf_t *)bufs;
    f->n = n;
    file_write_next(o);
}

static void file_close(struct logs_output *o, void (*done)(struct logs_output *o))
{
    /* A write in flight still uses o: finish it (the batch then counts as
     * delivered) before reporting closed. */
    struct out_file *f = o->impl;
    if (o->busy)
        f->close_done = done;
    else
        done(o);
}

static void file_free(struct logs_output *o)
{
    struct out_file *f = o->impl;
    if (f && f->own_fd && f->fd >= 0)
        close(f->fd);
    free(f);
}

static const struct logs_output_ops file_ops = {.send = file_send, .close = file_close, .free = file_free};

int logs_out_file_init(struct logs_output *o, char *err, size_t errlen)
{
    struct out_file *f = calloc(1, sizeof *f);
    if (!f)
        return UV_ENOMEM;
    f->req.data = o;
    if (o->conf->kind == LOGS_OUT_STDOUT) {
        f->fd = STDOUT_FILENO;
    } else {
        f->fd = open(o->conf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (f->fd < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot open %s: %s", o->conf->path, strerror(e));
            free(f);
            return -e;
        }
        f->own_fd = true;
    }
    o->impl = f;
    o->ops = &file_ops;
    return 0;
}
