/* HTTP/1.x request head parsing for the /metrics endpoint. */
#include "metrics_http_request.h"

#include <string.h>
#include <strings.h>

bool mreq_find_header(const char *p, const char *end, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = eol + 1;
    }
    return false;
}

int mreq_parse(const char *buf, size_t len, struct mreq *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    r->head_len = (size_t)(end - buf) + 4;
    const char *eol = memchr(buf, '\r', r->head_len);
    const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || eol - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
        return -1;
    bool http10 = sp2[8] == '0';
    const char *hdrs = eol + 2, *hend = end + 2;
    char v[64];
    r->keep_alive = !http10;
    if (mreq_find_header(hdrs, hend, "Connection", v, sizeof v))
        r->keep_alive = http10 ? strcasecmp(v, "keep-alive") == 0 : strcasecmp(v, "close") != 0;
    r->has_body = (mreq_find_header(hdrs, hend, "Content-Length", v, sizeof v) && strcmp(v, "0") != 0) ||
                  mreq_find_header(hdrs, hend, "Transfer-Encoding", v, sizeof v);
    r->get = sp1 - buf == 3 && memcmp(buf, "GET", 3) == 0;
    r->head = sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0;
    r->path = sp1 + 1;
    r->path_len = (size_t)(sp2 - r->path);
    const char *q = memchr(r->path, '?', r->path_len);
    if (q)
        r->path_len = (size_t)(q - r->path);
    r->has_accept = mreq_find_header(hdrs, hend, "Accept", r->accept, sizeof r->accept);
    return 1;
}
