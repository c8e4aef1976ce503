/*
 * Number parsing and formatting. The statsd hot path sees mostly short
 * integers and decimals, so those take a fast exact path; anything else
 * (exponents, long mantissas) goes through strtod on a bounded stack copy,
 * because the input spans are not NUL-terminated.
 */
#include "metrics_number.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Powers of ten exactly representable as doubles. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The fast path: [sign] digits [. digits] with at most 15 significant
 * digits. The mantissa is then exact and one correctly rounded division by
 * an exact power of ten gives the correctly rounded result. Returns 1 on
 * success, 0 when the span does not qualify (not necessarily invalid). */
static int parse_simple_decimal(const char *p, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) {
        neg = p[i] == '-';
        i++;
    }
    uint64_t mant = 0;
    int digits = 0, frac = 0;
    bool seen_digit = false, seen_dot = false;
    for (; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') {
            seen_digit = true;
            if (mant == 0 && c == '0') {
                if (seen_dot)
                    frac++;
                continue;
            }
            if (++digits > 15)
                return 0;
            mant = mant * 10 + (uint64_t)(c - '0');
            if (seen_dot)
                frac++;
        } else if (c == '.' && !seen_dot) {
            seen_dot = true;
        } else {
            return 0;
        }
    }
    if (!seen_digit || frac > 22)
        return 0;
    double v = (double)mant / pow10_exact[frac];
    *out = neg ? -v : v;
    return 1;
}

bool metrics_parse_double(const char *p, size_t n, double *out)
{
    if (n == 0)
        return false;
    if (parse_simple_decimal(p, n, out))
        return true;
    char tmp[64];
    if (n >= sizeof tmp)
        return false;
    /* strtod also takes hex, "inf", "nan" and leading spaces: allow only
     * the characters of a decimal number. */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return false;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool metrics_parse_prom_value(const char *p, size_t n, double *out)
{
    if (metrics_parse_double(p, n, out))
        return true;
    size_t i = 0;
    bool neg = false;
    if (n > 0 && (p[0] == '+' || p[0] == '-')) {
        neg = p[0] == '-';
        i = 1;
    }
    if (n - i == 3 && strncasecmp(p + i, "nan", 3) == 0 && i == 0) {
        *out = NAN;
        return true;
    }
    if (n - i == 3 && strncasecmp(p + i, "inf", 3) == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    /* Large finite numbers in exponent form that overflow are +-Inf in
     * Go's ParseFloat too, but it reports an error: so do we. */
    return false;
}

bool metrics_parse_int64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n > 0 && (p[0] == '+' || p[0] == '-')) {
        neg = p[0] == '-';
        i = 1;
    }
    if (i == n || n - i > 19)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

size_t metrics_format_int64(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

size_t metrics_format_double(char *buf, double v)
{
    if (isnan(v)) {
        memcpy(buf, "NaN", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(buf, v > 0 ? "+Inf" : "-Inf", 5);
        return 4;
    }
    /* Integral values below 2^53 print exactly as integers: the common
     * case for counters and bucket counts, and much faster than printf. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v)))
        return metrics_format_int64(buf, (int64_t)v);
    int n = snprintf(buf, METRICS_NUM_MAX, "%.15g", v);
    if (strtod(buf, NULL) != v)
        n = snprintf(buf, METRICS_NUM_MAX, "%.17g", v);
    return (size_t)n;
}
