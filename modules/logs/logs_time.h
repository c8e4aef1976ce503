/*
 * logs_time: RFC 3339 timestamps <-> nanoseconds since the Unix epoch, with
 * no libc time zone machinery (no mktime/gmtime_r per line).
 */
#ifndef LOGS_TIME_H
#define LOGS_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Parses "2016-10-06T00:17:09.669794202Z" or "...+02:00" (fraction up to 9
 * digits, more are ignored; 't' and ' ' accepted as separators per RFC 3339)
 * spanning exactly n bytes. Returns 0 and sets *ns, or -1 if malformed or
 * before 1970. */
int logs_time_parse(const char *s, size_t n, uint64_t *ns);

/* Writes ns as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (30 bytes, no NUL) into out
 * and returns 30. out must hold LOGS_TIME_LEN bytes. */
#define LOGS_TIME_LEN 30
size_t logs_time_format(uint64_t ns, char *out);

#endif
