/*
 * logs_record: one log record as it leaves the parser. Borrowed: the
 * pointers are valid only during the callback that receives it.
 */
#ifndef LOGS_RECORD_H
#define LOGS_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum logs_stream {
    LOGS_STREAM_NONE = 0,
    LOGS_STREAM_STDOUT,
    LOGS_STREAM_STDERR,
};

enum logs_rec_flags {
    LOGS_REC_MALFORMED = 1u << 0, /* did not match the format: passed on raw */
    LOGS_REC_SPLIT = 1u << 1,     /* longer than the maximum: cut into pieces */
    LOGS_REC_JSON = 1u << 2,      /* msg is a validated JSON object */
};

struct logs_rec {
    uint64_t time_ns;    /* from the line, or the time it was read */
    const char *msg;
    size_t len;
    /* The source offset to resume from once this record (and all before it)
     * is delivered: the start of the oldest line still held back by the
     * parser (partial or multiline), else the end of the last line read. */
    uint64_t resume_off;
    uint8_t stream;      /* enum logs_stream */
    uint8_t flags;       /* enum logs_rec_flags */
};

#endif
