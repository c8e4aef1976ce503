/*
 * logs_cri: splits one line of the CRI container log format,
 *
 *     <RFC3339Nano time> <stdout|stderr> <tag>[:<more tags>] <message>
 *
 * where tag P marks a partial line (the runtime cut a long line; the next
 * P/F lines of the same stream continue it) and F a full one. No copy: the
 * result points into the line.
 */
#ifndef LOGS_CRI_H
#define LOGS_CRI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs_record.h"

struct logs_cri_line {
    uint64_t time_ns;
    enum logs_stream stream;
    bool partial;
    const char *msg;
    size_t len;
};

/* Splits p[0..n) (without its newline). Returns 0, or -1 if the line does
 * not follow the format (then *out is unspecified). */
int logs_cri_split(const char *p, size_t n, struct logs_cri_line *out);

#endif
