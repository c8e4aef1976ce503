/*
 * logs_parser: turns the lines of one source into records. Format stage
 * (CRI, docker json-file, JSON lines, raw) with partial-line reassembly per
 * stream, then an optional multiline stage joining continuation lines (a
 * stack trace) to the line that matched the start pattern.
 *
 * One parser per source (file), used from one thread. Lines that do not
 * follow the format are counted and passed on raw, flagged malformed. No
 * record is ever longer than max_size: a longer one is cut into pieces
 * flagged split, so memory stays bounded whatever the input.
 */
#ifndef LOGS_PARSER_H
#define LOGS_PARSER_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs_buf.h"
#include "logs_record.h"

enum logs_format {
    LOGS_FORMAT_CRI = 0,
    LOGS_FORMAT_DOCKER,
    LOGS_FORMAT_JSON,
    LOGS_FORMAT_RAW,
};
#define LOGS_FORMAT_CHOICES "cri|docker|json|raw"

typedef void (*logs_emit_fn)(void *arg, const struct logs_rec *rec);

struct logs_parser_conf {
    enum logs_format format;
    size_t max_size;            /* bytes per record; >= 16 */
    /* POSIX extended regular expression matched against each message: a
     * match starts a new record, other lines continue the previous one.
     * NULL or "": no multiline joining. */
    const char *multiline_start;
};

/* A record being assembled: CRI/docker partials, or a multiline group. */
struct logs_held {
    struct logs_buf b;
    uint64_t start_off; /* source offset of its first line */
    uint64_t time_ns;
    uint8_t stream, flags;
    bool active;
};

struct logs_parser {
    enum logs_format format;
    size_t max_size;
    bool multiline;
    regex_t start_re;
    struct logs_held partial[3]; /* by enum logs_stream */
    struct logs_held ml;
    struct logs_buf ml_out;      /* a finished multiline group being emitted */
    struct logs_buf scratch;     /* decoded docker "log" values */
    struct logs_buf re_text;     /* a message NUL-terminated for regexec */
    uint64_t last_end;           /* end offset of the last line fed */
    bool cut, cut_partial;       /* in a line the source cut (see cut_line) */
    uint8_t cut_stream;
    logs_emit_fn emit;
    void *arg;
    /* Counters, read by the owner. */
    uint64_t lines, records, malformed, split;
};

/* Initialises p. Returns 0, or -1 with a message in err (a bad regular
 * expression). */
int logs_parser_init(struct logs_parser *p, const struct logs_parser_conf *conf, logs_emit_fn emit, void *arg,
                     char *err, size_t errlen);
void logs_parser_fini(struct logs_parser *p);

/* Feeds one line (without its newline) that spans source offsets
 * [start, end) (end includes the newline). A piece of a line the source had
 * to cut has no newline (end == start + n); the pieces up to the one with
 * the newline form one record, flagged split. now_ns is the time for
 * records whose format has none. May call emit any number of times. */
void logs_parser_line(struct logs_parser *p, const char *line, size_t n, uint64_t start, uint64_t end,
                      uint64_t now_ns);

/* Emits the pending multiline group (the owner calls this when no line came
 * for a while), and with partials also unfinished partial lines (the source
 * ended: rotated away, deleted, or shutting down). */
void logs_parser_flush(struct logs_parser *p, bool partials);

/* Whether the parser holds any unfinished record. */
bool logs_parser_holding(const struct logs_parser *p);

/* Offset to resume from if everything emitted so far is delivered. */
uint64_t logs_parser_resume(const struct logs_parser *p);

#endif
