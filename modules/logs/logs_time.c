/*
 * logs_time: RFC 3339 parsing and formatting with the proleptic Gregorian
 * day arithmetic done by hand, because mktime() consults the time zone and
 * takes locks, and this runs once per log line.
 */
#include "logs_time.h"

#include <string.h>

/* Days since 1970-01-01 of a civil date (y, m 1..12, d 1..31). The year is
 * shifted to start in March so the leap day is the last day of the year. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Reads exactly k decimal digits; -1 if any is not a digit. */
static int digits(const char *s, int k)
{
    int v = 0;
    for (int i = 0; i < k; i++) {
        unsigned c = (unsigned char)s[i] - '0';
        if (c > 9)
            return -1;
        v = v * 10 + (int)c;
    }
    return v;
}

static const unsigned days_in_month[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

int logs_time_parse(const char *s, size_t n, uint64_t *ns)
{
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > (int)days_in_month[mo - 1] || h > 23 || mi > 59 ||
        se > 60 || h < 0 || mi < 0 || se < 0)
        return -1;
    size_t i = 19;
    uint64_t frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        int kept = 0;
        while (i < n && (unsigned)((unsigned char)s[i] - '0') <= 9) {
            if (kept < 9) {
                frac = frac * 10 + (uint64_t)(s[i] - '0');
                kept++;
            }
            i++;
        }
        if (i == start)
            return -1;
        while (kept++ < 9)
            frac *= 10;
    }
    int64_t offset = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        offset = (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (secs < 0)
        return -1;
    *ns = (uint64_t)secs * 1000000000u + frac;
    return 0;
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

size_t logs_time_format(uint64_t ns, char *out)
{
    /* Consecutive lines mostly share the second: remember the last one. */
    static __thread uint64_t cached_sec = UINT64_MAX;
    static __thread char cached[20];
    uint64_t sec = ns / 1000000000u;
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    if (sec != cached_sec) {
        int y;
        unsigned m, d;
        civil_from_days((int64_t)(sec / 86400), &y, &m, &d);
        unsigned rem = (unsigned)(sec % 86400);
        put2(cached, (unsigned)y / 100 % 100);
        put2(cached + 2, (unsigned)y % 100);
        cached[4] = '-';
        put2(cached + 5, m);
        cached[7] = '-';
        put2(cached + 8, d);
        cached[10] = 'T';
        put2(cached + 11, rem / 3600);
        cached[13] = ':';
        put2(cached + 14, rem / 60 % 60);
        cached[16] = ':';
        put2(cached + 17, rem % 60);
        cached[19] = '.';
        cached_sec = sec;
    }
    memcpy(out, cached, 20);
    for (int i = 28; i >= 20; i--) {
        out[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    out[29] = 'Z';
    return LOGS_TIME_LEN;
}
