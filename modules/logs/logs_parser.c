/*
 * logs_parser: format stage, partial reassembly and multiline joining.
 */
#include "logs_parser.h"

#include <stdio.h>
#include <string.h>

#include "logs_cri.h"
#include "logs_docker.h"
#include "logs_json.h"

int logs_parser_init(struct logs_parser *p, const struct logs_parser_conf *conf, logs_emit_fn emit, void *arg,
                     char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->format = conf->format;
    p->max_size = conf->max_size < 16 ? 16 : conf->max_size;
    p->emit = emit;
    p->arg = arg;
    if (conf->multiline_start && *conf->multiline_start) {
        int rc = regcomp(&p->start_re, conf->multiline_start, REG_EXTENDED | REG_NOSUB);
        if (rc) {
            char why[128];
            regerror(rc, &p->start_re, why, sizeof why);
            snprintf(err, errlen, "invalid regular expression \"%s\": %s", conf->multiline_start, why);
            return -1;
        }
        p->multiline = true;
    }
    return 0;
}

void logs_parser_fini(struct logs_parser *p)
{
    for (int i = 0; i < 3; i++)
        logs_buf_free(&p->partial[i].b);
    logs_buf_free(&p->ml.b);
    logs_buf_free(&p->ml_out);
    logs_buf_free(&p->scratch);
    logs_buf_free(&p->re_text);
    if (p->multiline)
        regfree(&p->start_re);
}

uint64_t logs_parser_resume(const struct logs_parser *p)
{
    uint64_t off = p->last_end;
    for (int i = 0; i < 3; i++)
        if (p->partial[i].active && p->partial[i].start_off < off)
            off = p->partial[i].start_off;
    if (p->ml.active && p->ml.start_off < off)
        off = p->ml.start_off;
    return off;
}

bool logs_parser_holding(const struct logs_parser *p)
{
    return p->partial[1].active || p->partial[2].active || p->partial[0].active || p->ml.active;
}

static void emit_final(struct logs_parser *p, struct logs_rec *rec)
{
    rec->resume_off = logs_parser_resume(p);
    p->records++;
    if (rec->flags & LOGS_REC_SPLIT)
        p->split++;
    p->emit(p->arg, rec);
}

/* Appends msg to a held record; whenever it would grow past max_size, the
 * full part is handed to sink and the rest continues in a fresh one whose
 * first line is line_start (the line being appended, which a restart must
 * read again). */
static void held_append(struct logs_parser *p, struct logs_held *h, const char *msg, size_t len, uint64_t line_start,
                        void (*sink)(struct logs_parser *, struct logs_rec *))
{
    while (h->b.n + len > p->max_size) {
        size_t take = p->max_size - h->b.n;
        if (logs_buf_append(&h->b, msg, take))
            abort();
        msg += take;
        len -= take;
        struct logs_rec rec = {.time_ns = h->time_ns, .msg = h->b.p, .len = h->b.n, .stream = h->stream,
                               .flags = (uint8_t)(h->flags | LOGS_REC_SPLIT)};
        h->start_off = line_start;
        sink(p, &rec);
        h->b.n = 0;
    }
    if (logs_buf_append(&h->b, msg, len))
        abort();
}

static void held_start(struct logs_held *h, const struct logs_rec *rec, uint64_t start_off)
{
    h->b.n = 0;
    h->start_off = start_off;
    h->time_ns = rec->time_ns;
    h->stream = rec->stream;
    h->flags = rec->flags;
    h->active = true;
}

/* Emits the multiline group in ml and leaves ml inactive. The bytes move to
 * ml_out first so ml can take the next line while they are emitted. */
static void ml_emit(struct logs_parser *p)
{
    struct logs_buf t = p->ml_out;
    p->ml_out = p->ml.b;
    p->ml.b = t;
    p->ml.b.n = 0;
    p->ml.active = false;
    struct logs_rec rec = {.time_ns = p->ml.time_ns, .msg = p->ml_out.p, .len = p->ml_out.n,
                           .stream = p->ml.stream, .flags = p->ml.flags};
    emit_final(p, &rec);
}

static bool ml_is_start(struct logs_parser *p, const struct logs_rec *rec)
{
    /* regexec wants a NUL-terminated string (glibc's REG_STARTEND would
     * spare the copy, but sanitizers' regexec interceptors ignore it and
     * read to a NUL). Matching stops at the first NUL inside a message. */
    p->re_text.n = 0;
    if (logs_buf_append(&p->re_text, rec->msg, rec->len) || logs_buf_append(&p->re_text, "", 1))
        abort();
    return regexec(&p->start_re, p->re_text.p, 0, NULL, 0) == 0;
}

/* The multiline stage (a second held record on top of the partials). */
static void deliver(struct logs_parser *p, struct logs_rec *rec, uint64_t start_off)
{
    if (!p->multiline) {
        emit_final(p, rec);
        return;
    }
    if (!p->ml.active || ml_is_start(p, rec)) {
        if (p->ml.active) {
            /* The new line is held from here on, so the emitted group's
             * resume offset stops before it. */
            p->ml.active = false;
            struct logs_buf t = p->ml_out;
            p->ml_out = p->ml.b;
            p->ml.b = t;
            struct logs_rec out = {.time_ns = p->ml.time_ns, .msg = p->ml_out.p, .len = p->ml_out.n,
                                   .stream = p->ml.stream, .flags = p->ml.flags};
            held_start(&p->ml, rec, start_off);
            held_append(p, &p->ml, rec->msg, rec->len, start_off, emit_final);
            emit_final(p, &out);
            return;
        }
        held_start(&p->ml, rec, start_off);
        held_append(p, &p->ml, rec->msg, rec->len, start_off, emit_final);
        return;
    }
    p->ml.flags |= rec->flags & LOGS_REC_MALFORMED;
    held_append(p, &p->ml, "\n", 1, start_off, emit_final);
    held_append(p, &p->ml, rec->msg, rec->len, start_off, emit_final);
}

/* Passes on a whole message from one line, cut into max_size pieces. */
static void deliver_line(struct logs_parser *p, struct logs_rec *rec, uint64_t start)
{
    while (rec->len > p->max_size) {
        struct logs_rec piece = *rec;
        piece.len = p->max_size;
        piece.flags |= LOGS_REC_SPLIT;
        deliver(p, &piece, start);
        rec->msg += p->max_size;
        rec->len -= p->max_size;
        rec->flags |= LOGS_REC_SPLIT;
    }
    deliver(p, rec, start);
}

/* Handles one physical line of a format with partials (CRI, docker). */
static void partial_line(struct logs_parser *p, struct logs_rec *rec, bool partial, uint64_t start)
{
    struct logs_held *h = &p->partial[rec->stream];
    if (!h->active && !partial) {
        deliver_line(p, rec, start);
        return;
    }
    if (!h->active)
        held_start(h, rec, start);
    /* A piece cut at max_size is delivered from its first line; the rest
     * continues from the current line. */
    while (h->b.n + rec->len > p->max_size) {
        size_t take = p->max_size - h->b.n;
        if (logs_buf_append(&h->b, rec->msg, take))
            abort();
        rec->msg += take;
        rec->len -= take;
        struct logs_rec piece = {.time_ns = h->time_ns, .msg = h->b.p, .len = h->b.n, .stream = h->stream,
                                 .flags = (uint8_t)(h->flags | LOGS_REC_SPLIT)};
        uint64_t piece_start = h->start_off;
        h->start_off = start;
        deliver(p, &piece, piece_start);
        h->b.n = 0;
        h->flags |= LOGS_REC_SPLIT;
    }
    if (logs_buf_append(&h->b, rec->msg, rec->len))
        abort();
    if (partial)
        return;
    h->active = false;
    struct logs_rec whole = {.time_ns = h->time_ns, .msg = h->b.p, .len = h->b.n, .stream = h->stream,
                             .flags = h->flags};
    deliver(p, &whole, h->start_off);
}

static void malformed_line(struct logs_parser *p, const char *line, size_t n, uint64_t start, uint64_t now_ns)
{
    p->malformed++;
    struct logs_rec rec = {.time_ns = now_ns, .msg = line, .len = n, .flags = LOGS_REC_MALFORMED};
    deliver_line(p, &rec, start);
}

/* The source cut a line longer than its limit: the pieces come without
 * newline (end == start + n) until the last. The first piece is parsed as
 * usual (a CRI prefix still gives time and stream); it and the pieces
 * after it form one record (cut again at max_size), flagged split. A
 * first piece that cannot be parsed (docker and JSON need the whole line)
 * makes the whole line one raw record, flagged malformed. */
static bool cut_line(struct logs_parser *p, const char *line, size_t n, uint64_t start, uint64_t end,
                     uint64_t now_ns)
{
    bool has_nl = end > start + n;
    if (p->cut) {
        struct logs_held *h = &p->partial[p->cut_stream];
        struct logs_rec rec = {.time_ns = now_ns, .msg = line, .len = n, .stream = p->cut_stream};
        p->cut = !has_nl;
        if (!h->active)
            h->flags = LOGS_REC_SPLIT; /* emitted by a flush meanwhile */
        partial_line(p, &rec, p->cut || p->cut_partial, start);
        return true;
    }
    if (has_nl)
        return false;
    p->cut = true;
    struct logs_cri_line c;
    struct logs_rec rec = {.time_ns = now_ns, .msg = line, .len = n, .flags = LOGS_REC_SPLIT};
    if (p->format == LOGS_FORMAT_CRI && logs_cri_split(line, n, &c) == 0) {
        rec.time_ns = c.time_ns;
        rec.msg = c.msg;
        rec.len = c.len;
        rec.stream = (uint8_t)c.stream;
        p->cut_partial = c.partial;
    } else {
        if (p->format != LOGS_FORMAT_RAW) {
            rec.flags |= LOGS_REC_MALFORMED;
            p->malformed++;
        }
        p->cut_partial = false;
    }
    p->cut_stream = rec.stream;
    if (p->partial[rec.stream].active)
        p->partial[rec.stream].flags |= LOGS_REC_SPLIT;
    partial_line(p, &rec, true, start);
    return true;
}

void logs_parser_line(struct logs_parser *p, const char *line, size_t n, uint64_t start, uint64_t end,
                      uint64_t now_ns)
{
    p->lines++;
    p->last_end = end;
    if (cut_line(p, line, n, start, end, now_ns))
        return;
    switch (p->format) {
    case LOGS_FORMAT_CRI: {
        struct logs_cri_line c;
        if (logs_cri_split(line, n, &c)) {
            malformed_line(p, line, n, start, now_ns);
            return;
        }
        struct logs_rec rec = {.time_ns = c.time_ns, .msg = c.msg, .len = c.len, .stream = (uint8_t)c.stream};
        partial_line(p, &rec, c.partial, start);
        return;
    }
    case LOGS_FORMAT_DOCKER: {
        struct logs_docker_line d;
        if (logs_docker_split(line, n, &p->scratch, &d)) {
            malformed_line(p, line, n, start, now_ns);
            return;
        }
        struct logs_rec rec = {.time_ns = d.time_ns ? d.time_ns : now_ns, .msg = d.msg, .len = d.len,
                               .stream = (uint8_t)d.stream};
        partial_line(p, &rec, d.partial, start);
        return;
    }
    case LOGS_FORMAT_JSON:
        if (n > p->max_size || !logs_json_is_object(line, line + n)) {
            malformed_line(p, line, n, start, now_ns);
            return;
        }
        {
            struct logs_rec rec = {.time_ns = now_ns, .msg = line, .len = n, .flags = LOGS_REC_JSON};
            deliver(p, &rec, start);
        }
        return;
    case LOGS_FORMAT_RAW: {
        struct logs_rec rec = {.time_ns = now_ns, .msg = line, .len = n};
        deliver_line(p, &rec, start);
        return;
    }
    }
}

void logs_parser_flush(struct logs_parser *p, bool partials)
{
    if (partials) {
        p->cut = false;
        for (int i = 0; i < 3; i++) {
            struct logs_held *h = &p->partial[i];
            if (!h->active)
                continue;
            h->active = false;
            struct logs_rec rec = {.time_ns = h->time_ns, .msg = h->b.p, .len = h->b.n, .stream = h->stream,
                                   .flags = h->flags};
            deliver(p, &rec, h->start_off);
        }
    }
    if (p->ml.active)
        ml_emit(p);
}
