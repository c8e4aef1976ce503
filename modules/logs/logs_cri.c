/*
 * logs_cri: the CRI line format. memchr finds the separators; the time is
 * parsed by hand; nothing is copied or allocated.
 */
#include "logs_cri.h"

#include <string.h>

#include "logs_time.h"

int logs_cri_split(const char *p, size_t n, struct logs_cri_line *out)
{
    const char *end = p + n;
    const char *sp = memchr(p, ' ', n);
    if (!sp || logs_time_parse(p, (size_t)(sp - p), &out->time_ns))
        return -1;
    const char *s = sp + 1;
    /* "stdout " and "stderr " share their first four bytes. */
    if (end - s < 8 || memcmp(s, "std", 3) != 0 || s[6] != ' ')
        return -1;
    if (memcmp(s + 3, "out", 3) == 0)
        out->stream = LOGS_STREAM_STDOUT;
    else if (memcmp(s + 3, "err", 3) == 0)
        out->stream = LOGS_STREAM_STDERR;
    else
        return -1;
    const char *tag = s + 7;
    if (*tag != 'P' && *tag != 'F')
        return -1;
    out->partial = *tag == 'P';
    /* The first tag may be followed by more, ':'-separated; the message
     * starts after the next space. A line that ends right after the tags
     * carries an empty message. */
    const char *t = tag + 1;
    if (t < end && *t == ':') {
        t = memchr(t, ' ', (size_t)(end - t));
        if (!t)
            t = end;
    } else if (t < end && *t != ' ') {
        return -1;
    }
    if (t < end)
        t++;
    out->msg = t;
    out->len = (size_t)(end - t);
    return 0;
}
