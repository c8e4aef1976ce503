/*
 * log: the agent's own log, to stderr, as text or JSON lines, with levels.
 * Safe from any thread: each line is formatted into a local buffer and
 * written with one write(2), so lines never interleave.
 */
#ifndef OTR_LOG_H
#define OTR_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "outrider/module.h"

enum otr_log_format {
    OTR_LOG_TEXT = 0,
    OTR_LOG_JSON,
};

/* Sets the threshold and format (main thread, before workers start or at a
 * reload: the variables are atomic). */
void otr_log_configure(enum otr_log_level level, enum otr_log_format format);
bool otr_log_enabled(enum otr_log_level level);
/* Logs one line; source is "core" or a module's name. */
void otr_log(enum otr_log_level level, const char *source, const char *fmt, ...) OTR_PRINTF(3, 4);
void otr_logv(enum otr_log_level level, const char *source, const char *fmt, va_list ap);
/* "error|warn|info|debug" to a level; -1 if none. */
int otr_log_level_parse(const char *s);

#define otr_log_error(...) otr_log(OTR_LOG_ERROR, "core", __VA_ARGS__)
#define otr_log_warn(...) otr_log(OTR_LOG_WARN, "core", __VA_ARGS__)
#define otr_log_info(...) otr_log(OTR_LOG_INFO, "core", __VA_ARGS__)
#define otr_log_debug(...) otr_log(OTR_LOG_DEBUG, "core", __VA_ARGS__)

#endif
