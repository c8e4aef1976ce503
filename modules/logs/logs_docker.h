/*
 * logs_docker: one line of Docker's json-file log driver,
 *
 *     {"log":"message\n","stream":"stdout","time":"2019-01-01T00:00:00.000000001Z"}
 *
 * A "log" value that does not end in a newline is a partial line (Docker
 * cuts lines at 16 KiB); the next line of the same stream continues it.
 */
#ifndef LOGS_DOCKER_H
#define LOGS_DOCKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs_buf.h"
#include "logs_record.h"

struct logs_docker_line {
    uint64_t time_ns;
    enum logs_stream stream;
    bool partial;
    const char *msg; /* in the scratch buffer, without the final newline */
    size_t len;
};

/* Parses p[0..n). The decoded message goes into scratch (reused). Returns 0,
 * or -1 if the line is not such an object (missing "log", bad JSON, bad
 * time). A missing "time" or "stream" is allowed (time 0, stream none). */
int logs_docker_split(const char *p, size_t n, struct logs_buf *scratch, struct logs_docker_line *out);

#endif
