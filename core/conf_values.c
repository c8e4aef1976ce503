/*
 * conf_values: the scalar syntaxes of the configuration language (durations,
 * sizes, addresses, ${VAR} expansion) and the helpers every config message
 * uses (JSON rendering, "did you mean"). Pure functions: no JSON schema here.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "conf_schema.h"

void *otr_conf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
        abort();
    }
    return q;
}

char *otr_conf_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(otr_conf_xrealloc(NULL, n), s, n);
}

/* ---- numbers with units ---------------------------------------------------- */

/* At most this many fraction digits: keeps fraction * unit within uint64_t
 * for every unit (1e6 * 2^40 < 2^64). */
#define FRACTION_DIGITS_MAX 6

/* Reads "<digits>[.<digits>]" at *p. The value is whole + frac / 10^fdigits. */
static bool scan_decimal(const char **p, uint64_t *whole, uint64_t *frac, unsigned *fdigits)
{
    const char *s = *p;
    uint64_t w = 0, f = 0;
    unsigned nd = 0, fd = 0;
    for (; *s >= '0' && *s <= '9'; s++, nd++) {
        if (__builtin_mul_overflow(w, 10, &w) || __builtin_add_overflow(w, (uint64_t)(*s - '0'), &w))
            return false;
    }
    if (*s == '.') {
        s++;
        for (; *s >= '0' && *s <= '9'; s++, fd++) {
            if (fd == FRACTION_DIGITS_MAX)
                return false;
            f = f * 10 + (uint64_t)(*s - '0');
        }
        if (fd == 0)
            return false;
    }
    if (nd == 0)
        return false;
    *p = s;
    *whole = w;
    *frac = f;
    *fdigits = fd;
    return true;
}

/* whole.frac * unit, exactly; false on overflow or a non-integral result. */
static bool scale_decimal(uint64_t whole, uint64_t frac, unsigned fdigits, uint64_t unit, uint64_t *out)
{
    uint64_t pow10 = 1, v, part;
    for (unsigned i = 0; i < fdigits; i++)
        pow10 *= 10;
    if (__builtin_mul_overflow(whole, unit, &v))
        return false;
    part = frac * unit;
    if (part % pow10 != 0)
        return false;
    return !__builtin_add_overflow(v, part / pow10, out);
}

int otr_parse_duration(const char *s, uint64_t *ms)
{
    static const struct { const char *name; uint64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    uint64_t total = 0;
    if (s == NULL || *s == '\0')
        return UV_EINVAL;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    while (*s != '\0') {
        uint64_t whole, frac, v;
        unsigned fd;
        if (!scan_decimal(&s, &whole, &frac, &fd))
            return UV_EINVAL;
        size_t u = 0, n = sizeof units / sizeof units[0];
        /* The table lists "ms" before "m", so "5ms" is not read as "5m" + "s". */
        for (; u < n; u++) {
            if (strncmp(s, units[u].name, strlen(units[u].name)) == 0)
                break;
        }
        if (u == n)
            return UV_EINVAL;
        s += strlen(units[u].name);
        if (!scale_decimal(whole, frac, fd, units[u].ms, &v) || __builtin_add_overflow(total, v, &total))
            return UV_EINVAL;
    }
    *ms = total;
    return 0;
}

int otr_parse_size(const char *s, uint64_t *bytes)
{
    static const struct { const char *name; unsigned shift; } units[] = {
        {"", 0}, {"b", 0},
        {"k", 10}, {"kb", 10}, {"kib", 10},
        {"m", 20}, {"mb", 20}, {"mib", 20},
        {"g", 30}, {"gb", 30}, {"gib", 30},
        {"t", 40}, {"tb", 40}, {"tib", 40},
    };
    uint64_t whole, frac;
    unsigned fd;
    if (s == NULL || !scan_decimal(&s, &whole, &frac, &fd))
        return UV_EINVAL;
    if (*s == ' ' && s[1] != '\0')
        s++;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (strcasecmp(s, units[u].name) == 0)
            return scale_decimal(whole, frac, fd, (uint64_t)1 << units[u].shift, bytes) ? 0 : UV_EINVAL;
    }
    return UV_EINVAL;
}

void otr_format_duration(uint64_t ms, char *buf, size_t len)
{
    static const struct { const char *name; uint64_t ms; } units[] = {
        {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
    };
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (ms % units[u].ms == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[u].ms), units[u].name);
            return;
        }
    }
    snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void otr_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (unsigned i = 0; i < 4; i++) {
        unsigned shift = 40 - 10 * i;
        if (bytes != 0 && bytes % ((uint64_t)1 << shift) == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(bytes >> shift), names[i]);
            return;
        }
    }
    snprintf(buf, len, "%lluB", (unsigned long long)bytes);
}

/* ---- addresses ------------------------------------------------------------- */

void otr_conf_address_free(struct otr_conf_address *a)
{
    free(a->text);
    free(a->host);
    memset(a, 0, sizeof *a);
}

static bool parse_port(const char *s, uint16_t *port)
{
    unsigned v = 0, n = 0;
    for (; *s >= '0' && *s <= '9'; s++, n++) {
        if (n == 5)
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (n == 0 || *s != '\0' || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Host names as DNS allows them (letters, digits, '-', '.'), plus '_' which
 * Kubernetes service records use; IPv4 literals fall in the same set. */
static bool host_name_valid(const char *h, size_t n)
{
    if (n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
            return false;
    }
    return true;
}

static int address_fill(struct otr_conf_address *out, const char *text, const char *host, size_t host_len,
                        uint16_t port, bool is_unix)
{
    out->text = otr_conf_xstrdup(text);
    out->host = otr_conf_xrealloc(NULL, host_len + 1);
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = port;
    out->is_unix = is_unix;
    return 0;
}

int otr_parse_address(const char *s, struct otr_conf_address *out, const char **why)
{
    static const char unix_prefix[] = "unix:";
    const char *colon;
    uint16_t port;
    if (strncmp(s, unix_prefix, sizeof unix_prefix - 1) == 0) {
        const char *path = s + sizeof unix_prefix - 1;
        if (*path == '\0')
            return *why = "empty unix socket path", UV_EINVAL;
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return *why = "unix socket path longer than 107 bytes", UV_EINVAL;
        return address_fill(out, s, path, strlen(path), 0, true);
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        char v6[INET6_ADDRSTRLEN];
        struct sockaddr_in6 tmp;
        if (close == NULL)
            return *why = "missing \"]\" after an IPv6 address", UV_EINVAL;
        size_t n = (size_t)(close - s - 1);
        if (n == 0 || n >= sizeof v6)
            return *why = "invalid IPv6 address", UV_EINVAL;
        memcpy(v6, s + 1, n);
        v6[n] = '\0';
        /* libuv's parser, the listener's (core/listener.c: libc's inet_pton
         * keeps 64 KiB of libc resident). It would take a zone index, which
         * a listener address does not. */
        if (memchr(v6, '%', n) || uv_ip6_addr(v6, 0, &tmp) != 0)
            return *why = "invalid IPv6 address", UV_EINVAL;
        if (close[1] != ':')
            return *why = "missing port after \"]\"", UV_EINVAL;
        if (!parse_port(close + 2, &port))
            return *why = "port must be a number 0..65535", UV_EINVAL;
        return address_fill(out, s, v6, n, port, false);
    }
    colon = strrchr(s, ':');
    if (colon == NULL)
        return *why = "missing \":port\"", UV_EINVAL;
    if (memchr(s, ':', (size_t)(colon - s)) != NULL)
        return *why = "IPv6 addresses need brackets, as in \"[::1]:8080\"", UV_EINVAL;
    if (!host_name_valid(s, (size_t)(colon - s)))
        return *why = "invalid host name", UV_EINVAL;
    if (!parse_port(colon + 1, &port))
        return *why = "port must be a number 0..65535", UV_EINVAL;
    return address_fill(out, s, s, (size_t)(colon - s), port, false);
}

/* ---- ${VAR} expansion ------------------------------------------------------ */

/* Defaults may nest ${...}; this bounds the recursion on hostile input. */
#define ENV_DEPTH_MAX 8

struct strbuf {
    char *p;
    size_t len, cap;
};

static void strbuf_add(struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = otr_conf_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Index of the "}" closing a default that starts at s[0], honouring nested
 * "${" and "$$"; n if unterminated. */
static size_t env_default_end(const char *s, size_t n)
{
    unsigned depth = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] == '$' && k + 1 < n && (s[k + 1] == '$' || s[k + 1] == '{')) {
            if (s[k + 1] == '{')
                depth++;
            k++;
        } else if (s[k] == '}') {
            if (depth == 0)
                return k;
            depth--;
        }
    }
    return n;
}

static bool env_expand_into(struct strbuf *b, const char *s, size_t n, int depth, char *err, size_t errlen)
{
    size_t i = 0;
    if (depth > ENV_DEPTH_MAX) {
        snprintf(err, errlen, "\"${...}\" defaults nested deeper than %d levels", ENV_DEPTH_MAX);
        return false;
    }
    while (i < n) {
        const char *dollar = memchr(s + i, '$', n - i);
        if (dollar == NULL) {
            strbuf_add(b, s + i, n - i);
            break;
        }
        size_t d = (size_t)(dollar - s);
        strbuf_add(b, s + i, d - i);
        if (d + 1 < n && s[d + 1] == '$') {
            strbuf_add(b, "$", 1);
            i = d + 2;
            continue;
        }
        if (d + 1 >= n || s[d + 1] != '{') {
            strbuf_add(b, "$", 1);
            i = d + 1;
            continue;
        }
        size_t name = d + 2, j = name;
        while (j < n && (isalnum((unsigned char)s[j]) || s[j] == '_'))
            j++;
        if (j == name || isdigit((unsigned char)s[name])) {
            snprintf(err, errlen, "invalid variable name after \"${\" (letters, digits and \"_\" only)");
            return false;
        }
        char *var = otr_conf_xrealloc(NULL, j - name + 1);
        memcpy(var, s + name, j - name);
        var[j - name] = '\0';
        const char *val = getenv(var);
        bool ok = true;
        if (j < n && s[j] == '}') {
            if (val == NULL) {
                snprintf(err, errlen, "environment variable \"%.64s\" is not set (use ${%.64s:-default} for a fallback)",
                         var, var);
                ok = false;
            } else {
                strbuf_add(b, val, strlen(val));
            }
            i = j + 1;
        } else if (j + 1 < n && s[j] == ':' && s[j + 1] == '-') {
            size_t start = j + 2, end = start + env_default_end(s + start, n - start);
            if (end >= n) {
                snprintf(err, errlen, "unterminated \"${%.64s:-\"", var);
                ok = false;
            } else if (val != NULL && *val != '\0') {
                strbuf_add(b, val, strlen(val));
            } else {
                ok = env_expand_into(b, s + start, end - start, depth + 1, err, errlen);
            }
            i = end + 1;
        } else {
            snprintf(err, errlen, "expected \"}\" or \":-default}\" after \"${%.64s\"", var);
            ok = false;
        }
        free(var);
        if (!ok)
            return false;
    }
    return true;
}

char *otr_env_expand(const char *s, char *errbuf, size_t errlen)
{
    struct strbuf b = {0};
    strbuf_add(&b, "", 0);
    if (!env_expand_into(&b, s, strlen(s), 0, errbuf, errlen)) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- messages -------------------------------------------------------------- */

#define KEY_TEXT_MAX 128

void otr_conf_key_text(const char *key, char *buf, size_t len)
{
    size_t o = 0, i = 0;
    if (len == 0)
        return;
    for (; key[i] != '\0' && i < KEY_TEXT_MAX && o + 5 < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (key[i] != '\0' && o + 4 <= len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

void otr_json_render(const json_t *v, char *buf, size_t len)
{
    if (len == 0)
        return;
    if (v == NULL) {
        snprintf(buf, len, "nothing");
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL) {
        snprintf(buf, len, "(unprintable)");
        return;
    }
    size_t n = strlen(text);
    if (n < len || len < 8) {
        snprintf(buf, len, "%s", text);
    } else {
        /* Cut on a UTF-8 character boundary, then mark the cut. */
        size_t keep = len - 4;
        while (keep > 0 && ((unsigned char)text[keep] & 0xC0) == 0x80)
            keep--;
        memcpy(buf, text, keep);
        memcpy(buf + keep, "...", 4);
    }
    free(text);
}

size_t otr_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = otr_conf_xrealloc(NULL, (lb + 1) * sizeof *row);
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

/* Keys are short; longer words (hostile input) are not worth a quadratic scan. */
#define SUGGEST_LEN_MAX 64

static void suggest_scan(const char *word, const char *const *cands, const char **best, size_t *best_d,
                         const char **prefix)
{
    size_t lw = strlen(word);
    for (; cands != NULL && *cands != NULL; cands++) {
        const char *c = *cands;
        size_t lc = strlen(c), lmax = lw > lc ? lw : lc, lmin = lw < lc ? lw : lc;
        if (lmax <= SUGGEST_LEN_MAX && (lw > lc ? lw - lc : lc - lw) <= 2) {
            size_t d = otr_edit_distance(word, c);
            /* 2d <= length keeps "ab" from suggesting "cd". */
            if (d <= 2 && 2 * d <= lmax && d < *best_d) {
                *best = c;
                *best_d = d;
            }
        }
        if (*prefix == NULL && lmin >= 2 && strncmp(word, c, lmin) == 0)
            *prefix = c;
    }
}

const char *otr_suggest(const char *word, const char *const *candidates, const char *const *extra)
{
    const char *best = NULL, *prefix = NULL;
    size_t best_d = SIZE_MAX;
    suggest_scan(word, candidates, &best, &best_d, &prefix);
    suggest_scan(word, extra, &best, &best_d, &prefix);
    return best ? best : prefix;
}
