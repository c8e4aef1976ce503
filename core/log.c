#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = OTR_LOG_INFO;
static _Atomic int log_format = OTR_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void otr_log_configure(enum otr_log_level level, enum otr_log_format format)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_format, (int)format);
}

bool otr_log_enabled(enum otr_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int otr_log_level_parse(const char *s)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static size_t format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

/* Escapes msg into out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

void otr_logv(enum otr_log_level level, const char *source, const char *fmt, va_list ap)
{
    if (!otr_log_enabled(level))
        return;
    char msg[2048], line[4600], ts[40];
    vsnprintf(msg, sizeof msg, fmt, ap);
    format_time(ts, sizeof ts);
    int n;
    if (atomic_load_explicit(&log_format, memory_order_relaxed) == OTR_LOG_JSON) {
        char esc[4200];
        json_escape(esc, sizeof esc, msg);
        n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"source\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     level_names[level], source, esc);
    } else {
        n = snprintf(line, sizeof line, "%s %-5s [%s] %s\n", ts, level_names[level], source, msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    /* One write per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void otr_log(enum otr_log_level level, const char *source, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    otr_logv(level, source, fmt, ap);
    va_end(ap);
}
