/*
 * metrics_registry: see metrics_registry.h.
 *
 * Layout. A family owns a hash table of label sets; a label set owns one
 * series pointer per shard, allocated when that shard first asks for it.
 * A series is a block of 64-bit cells holding doubles' bits (counter, gauge,
 * histogram sum) or integer counts (histogram buckets). Only the thread
 * owning a shard writes its cells, so an update is a relaxed load and a
 * relaxed store: no lock, no read-modify-write instruction. Readers (render)
 * load relaxed and may see a value a few updates old, never a torn one.
 *
 * Histograms keep one count per bucket plus one for +Inf and no separate
 * total: _count is the sum of the bucket cells, so a render can never show a
 * _count different from the +Inf bucket, whatever the interleaving.
 */
#include "metrics_registry.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef _Atomic uint64_t otr_cell;

struct otr_series {
    const struct otr_metric *family;
    otr_cell v;         /* counter / gauge value, or histogram sum (double bits) */
    otr_cell buckets[]; /* histogram: n_buckets + 1 counts, the last for +Inf */
};

struct labelset {
    uint64_t hash;
    const char **values; /* n_labels strings, stored after the shard array */
    otr_series *shards[]; /* n_shards, NULL until that shard uses it */
};

struct otr_metric {
    struct otr_registry *reg;
    char *name, *help;
    char *om_name; /* OpenMetrics family name: counters without "_total" */
    enum otr_metric_type type;
    char **label_names;
    size_t n_labels;
    double *buckets;
    size_t n_buckets;
    double (*fn)(void *arg); /* gauge computed at render time, or NULL */
    void *fn_arg;
    struct labelset **table; /* open addressing, cap a power of two */
    size_t n_sets, cap;
    struct labelset **sorted; /* n_sets label sets in render order */
    bool sorted_valid;
};

struct otr_registry {
    pthread_mutex_t mu;
    unsigned n_shards;
    struct otr_metric **families; /* sorted by name */
    size_t n_families, cap_families;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p && n) {
        fprintf(stderr, "%s:%d: out of memory (%zu bytes)\n", __FILE__, __LINE__, n);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p && n && size) {
        fprintf(stderr, "%s:%d: out of memory (%zu x %zu bytes)\n", __FILE__, __LINE__, n, size);
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static double cell_load_double(const otr_cell *c)
{
    uint64_t bits = atomic_load_explicit(c, memory_order_relaxed);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static void cell_store_double(otr_cell *c, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    atomic_store_explicit(c, bits, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Registry lifetime                                                         */

struct otr_registry *otr_registry_new(unsigned n_shards)
{
    if (n_shards == 0)
        return NULL;
    struct otr_registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->n_shards = n_shards;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void family_free(struct otr_metric *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        struct labelset *ls = m->table[i];
        if (!ls)
            continue;
        for (unsigned s = 0; s < m->reg->n_shards; s++)
            free(ls->shards[s]);
        free(ls);
    }
    free(m->table);
    free(m->sorted);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->label_names[i]);
    free(m->label_names);
    free(m->buckets);
    free(m->name);
    free(m->help);
    free(m->om_name);
    free(m);
}

void otr_registry_free(struct otr_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_families; i++)
        family_free(r->families[i]);
    free(r->families);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static bool is_name_start(char c, bool colon_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

static bool is_name_char(char c, bool colon_ok)
{
    return is_name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !is_name_start(s[0], colon_ok))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!is_name_char(*p, colon_ok))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *type_name(enum otr_metric_type t)
{
    switch (t) {
    case OTR_METRIC_COUNTER: return "counter";
    case OTR_METRIC_GAUGE: return "gauge";
    case OTR_METRIC_HISTOGRAM: return "histogram";
    }
    return "unknown";
}

static size_t count_labels(const char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    return n;
}

/* Checks a declaration on its own; writes why it is bad into err. */
static bool desc_valid(const struct otr_metric_desc *d, char *err, size_t errlen)
{
    if (!d->name || !valid_name(d->name, true)) {
        snprintf(err, errlen, "metric name \"%s\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                 d->name ? d->name : "(null)");
        return false;
    }
    if (d->type != OTR_METRIC_COUNTER && d->type != OTR_METRIC_GAUGE && d->type != OTR_METRIC_HISTOGRAM) {
        snprintf(err, errlen, "metric %s: unknown type %d", d->name, (int)d->type);
        return false;
    }
    /* Without the suffix, the Prometheus and OpenMetrics expositions of a
     * counter would name different series. */
    if (d->type == OTR_METRIC_COUNTER && (!ends_with(d->name, "_total") || strlen(d->name) == 6)) {
        snprintf(err, errlen, "counter %s: counter names must end in _total", d->name);
        return false;
    }
    if (d->type != OTR_METRIC_COUNTER && ends_with(d->name, "_total")) {
        snprintf(err, errlen, "%s %s: only counters may end in _total", type_name(d->type), d->name);
        return false;
    }
    if (d->type == OTR_METRIC_HISTOGRAM &&
        (ends_with(d->name, "_bucket") || ends_with(d->name, "_sum") || ends_with(d->name, "_count"))) {
        snprintf(err, errlen, "histogram %s: the name must not end in _bucket, _sum or _count", d->name);
        return false;
    }
    size_t n = count_labels(d->label_names);
    for (size_t i = 0; i < n; i++) {
        const char *l = d->label_names[i];
        if (!valid_name(l, false) || strncmp(l, "__", 2) == 0) {
            snprintf(err, errlen,
                     "metric %s: label name \"%s\" is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]* and not "
                     "start with \"__\"",
                     d->name, l);
            return false;
        }
        if (d->type == OTR_METRIC_HISTOGRAM && strcmp(l, "le") == 0) {
            snprintf(err, errlen, "histogram %s: label name \"le\" is reserved for buckets", d->name);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(l, d->label_names[j]) == 0) {
                snprintf(err, errlen, "metric %s: label name \"%s\" appears twice", d->name, l);
                return false;
            }
    }
    if (d->type == OTR_METRIC_HISTOGRAM) {
        if (d->n_buckets == 0 || !d->buckets) {
            snprintf(err, errlen, "histogram %s: at least one bucket bound is needed", d->name);
            return false;
        }
        for (size_t i = 0; i < d->n_buckets; i++) {
            if (!isfinite(d->buckets[i])) {
                snprintf(err, errlen, "histogram %s: bucket %zu is not finite (+Inf is implicit)", d->name, i);
                return false;
            }
            if (i > 0 && !(d->buckets[i] > d->buckets[i - 1])) {
                snprintf(err, errlen, "histogram %s: bucket bounds must be strictly ascending (bucket %zu)",
                         d->name, i);
                return false;
            }
        }
    } else if (d->n_buckets) {
        snprintf(err, errlen, "%s %s: only histograms have buckets", type_name(d->type), d->name);
        return false;
    }
    return true;
}

/* The family name OpenMetrics uses in # TYPE and # HELP. */
static char *om_family_name(const char *name, enum otr_metric_type t)
{
    char *s = xstrdup(name);
    if (t == OTR_METRIC_COUNTER)
        s[strlen(s) - 6] = '\0';
    return s;
}

/* Whether an existing family matches a redeclaration exactly. */
static bool family_matches(const struct otr_metric *m, const struct otr_metric_desc *d, char *err, size_t errlen)
{
    if (m->fn) {
        snprintf(err, errlen, "metric %s is already registered as a computed gauge", d->name);
        return false;
    }
    if (m->type != d->type) {
        snprintf(err, errlen, "metric %s is already registered as a %s, not a %s", d->name, type_name(m->type),
                 type_name(d->type));
        return false;
    }
    size_t n = count_labels(d->label_names);
    bool same = n == m->n_labels;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(d->label_names[i], m->label_names[i]) == 0;
    if (!same) {
        snprintf(err, errlen, "metric %s is already registered with other label names", d->name);
        return false;
    }
    same = d->n_buckets == m->n_buckets;
    for (size_t i = 0; same && i < d->n_buckets; i++)
        same = d->buckets[i] == m->buckets[i];
    if (!same) {
        snprintf(err, errlen, "histogram %s is already registered with other buckets", d->name);
        return false;
    }
    return true;
}

/* Binary search by name; returns the index where name is or would go. */
static size_t family_index(const struct otr_registry *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->n_families;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->families[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Two families may not share an OpenMetrics family name (counter "a_total"
 * and gauge "a"), nor may one's samples collide with another's name. */
static const struct otr_metric *family_clash(const struct otr_registry *r, const char *om_name)
{
    for (size_t i = 0; i < r->n_families; i++)
        if (strcmp(r->families[i]->om_name, om_name) == 0)
            return r->families[i];
    return NULL;
}

static void family_insert(struct otr_registry *r, size_t at, struct otr_metric *m)
{
    if (r->n_families == r->cap_families) {
        r->cap_families = r->cap_families ? 2 * r->cap_families : 16;
        struct otr_metric **f = realloc(r->families, r->cap_families * sizeof *f);
        if (!f) {
            fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
            abort();
        }
        r->families = f;
    }
    memmove(r->families + at + 1, r->families + at, (r->n_families - at) * sizeof *r->families);
    r->families[at] = m;
    r->n_families++;
}

static struct otr_metric *family_new(struct otr_registry *r, const struct otr_metric_desc *d)
{
    struct otr_metric *m = xcalloc(1, sizeof *m);
    m->reg = r;
    m->name = xstrdup(d->name);
    m->help = xstrdup(d->help ? d->help : "");
    m->om_name = om_family_name(d->name, d->type);
    m->type = d->type;
    m->n_labels = count_labels(d->label_names);
    m->label_names = xcalloc(m->n_labels ? m->n_labels : 1, sizeof *m->label_names);
    for (size_t i = 0; i < m->n_labels; i++)
        m->label_names[i] = xstrdup(d->label_names[i]);
    m->n_buckets = d->n_buckets;
    if (d->n_buckets) {
        m->buckets = xmalloc(d->n_buckets * sizeof *m->buckets);
        memcpy(m->buckets, d->buckets, d->n_buckets * sizeof *m->buckets);
    }
    return m;
}

otr_metric *otr_registry_metric(struct otr_registry *r, const struct otr_metric_desc *desc, char *err,
                                size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!desc_valid(desc, err, errlen))
        return NULL;
    pthread_mutex_lock(&r->mu);
    bool found;
    size_t at = family_index(r, desc->name, &found);
    struct otr_metric *m = NULL;
    if (found) {
        m = r->families[at];
        if (!family_matches(m, desc, err, errlen))
            m = NULL;
        pthread_mutex_unlock(&r->mu);
        return m;
    }
    m = family_new(r, desc);
    const struct otr_metric *other = family_clash(r, m->om_name);
    if (other) {
        snprintf(err, errlen, "metric %s clashes with %s %s: both are family \"%s\" in OpenMetrics", desc->name,
                 type_name(other->type), other->name, m->om_name);
        family_free(m);
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    family_insert(r, at, m);
    pthread_mutex_unlock(&r->mu);
    return m;
}

int otr_registry_gauge_fn(struct otr_registry *r, const char *name, const char *help, double (*fn)(void *arg),
                          void *arg)
{
    struct otr_metric_desc d = {.name = name, .help = help, .type = OTR_METRIC_GAUGE};
    char err[256];
    if (!fn || !desc_valid(&d, err, sizeof err))
        return UV_EINVAL;
    pthread_mutex_lock(&r->mu);
    bool found;
    size_t at = family_index(r, name, &found);
    if (found) {
        pthread_mutex_unlock(&r->mu);
        return UV_EEXIST;
    }
    struct otr_metric *m = family_new(r, &d);
    if (family_clash(r, m->om_name)) {
        family_free(m);
        pthread_mutex_unlock(&r->mu);
        return UV_EEXIST;
    }
    m->fn = fn;
    m->fn_arg = arg;
    family_insert(r, at, m);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Series                                                                    */

/* FNV-1a over the values, each followed by a 0xff byte (never in UTF-8
 * text) so that ("ab","c") and ("a","bc") differ. */
static uint64_t labels_hash(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ull;
        h = (h ^ 0xff) * 0x100000001b3ull;
    }
    return h;
}

static bool labels_equal(const struct labelset *ls, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ls->values[i], values[i]) != 0)
            return false;
    return true;
}

/* One allocation: the struct, its shard pointers, the value pointers and
 * the value bytes. */
static struct labelset *labelset_new(const struct otr_metric *m, uint64_t hash, const char *const *values)
{
    unsigned n_shards = m->reg->n_shards;
    size_t bytes = sizeof(struct labelset) + n_shards * sizeof(otr_series *) + m->n_labels * sizeof(char *);
    for (size_t i = 0; i < m->n_labels; i++)
        bytes += strlen(values[i]) + 1;
    struct labelset *ls = calloc(1, bytes);
    if (!ls)
        return NULL;
    ls->hash = hash;
    ls->values = (const char **)(ls->shards + n_shards);
    char *text = (char *)(ls->values + m->n_labels);
    for (size_t i = 0; i < m->n_labels; i++) {
        size_t len = strlen(values[i]) + 1;
        memcpy(text, values[i], len);
        ls->values[i] = text;
        text += len;
    }
    return ls;
}

static int table_grow(struct otr_metric *m)
{
    size_t cap = m->cap ? 2 * m->cap : 8;
    struct labelset **t = calloc(cap, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct labelset *ls = m->table[i];
        if (!ls)
            continue;
        size_t j = ls->hash & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = ls;
    }
    free(m->table);
    m->table = t;
    m->cap = cap;
    return 0;
}

/* Finds or creates the label set; called with the registry's mutex held. */
static struct labelset *labelset_get(struct otr_metric *m, const char *const *values)
{
    uint64_t h = labels_hash(values, m->n_labels);
    if (m->cap) {
        for (size_t j = h & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
            struct labelset *ls = m->table[j];
            if (!ls)
                break;
            if (ls->hash == h && labels_equal(ls, values, m->n_labels))
                return ls;
        }
    }
    if ((m->n_sets + 1) * 2 > m->cap && table_grow(m) != 0)
        return NULL;
    struct labelset **sorted = realloc(m->sorted, (m->n_sets + 1) * sizeof *sorted);
    if (!sorted)
        return NULL;
    m->sorted = sorted;
    struct labelset *ls = labelset_new(m, h, values);
    if (!ls)
        return NULL;
    size_t j = h & (m->cap - 1);
    while (m->table[j])
        j = (j + 1) & (m->cap - 1);
    m->table[j] = ls;
    m->sorted[m->n_sets++] = ls;
    m->sorted_valid = false;
    return ls;
}

otr_series *otr_registry_series(otr_metric *m, unsigned shard, const char *const *label_values)
{
    if (!m || m->fn || shard >= m->reg->n_shards)
        return NULL;
    for (size_t i = 0; i < m->n_labels; i++)
        if (!label_values || !label_values[i])
            return NULL;
    static const char *const none[1] = {NULL};
    if (!label_values)
        label_values = none;
    pthread_mutex_lock(&m->reg->mu);
    struct labelset *ls = labelset_get(m, label_values);
    otr_series *s = ls ? ls->shards[shard] : NULL;
    if (ls && !s) {
        size_t cells = m->type == OTR_METRIC_HISTOGRAM ? m->n_buckets + 1 : 0;
        s = calloc(1, sizeof *s + cells * sizeof(otr_cell));
        if (s) {
            s->family = m;
            ls->shards[shard] = s;
        }
    }
    pthread_mutex_unlock(&m->reg->mu);
    return s;
}

void otr_series_counter_add(otr_series *s, double v)
{
    if (!(v >= 0))
        return; /* counters never go down; NaN is dropped as well */
    cell_store_double(&s->v, cell_load_double(&s->v) + v);
}

void otr_series_gauge_set(otr_series *s, double v)
{
    cell_store_double(&s->v, v);
}

void otr_series_gauge_add(otr_series *s, double v)
{
    cell_store_double(&s->v, cell_load_double(&s->v) + v);
}

void otr_series_observe(otr_series *s, double v)
{
    const struct otr_metric *m = s->family;
    if (isnan(v))
        return;
    /* Upper bounds are inclusive (le): the first bound >= v. */
    size_t lo = 0, hi = m->n_buckets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->buckets[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    otr_cell *b = &s->buckets[lo];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1, memory_order_relaxed);
    cell_store_double(&s->v, cell_load_double(&s->v) + v);
}

/* ------------------------------------------------------------------------ */
/* Number formatting                                                         */

/* Formats v the way Go's strconv.FormatFloat(v, 'g', -1, 64) does, which is
 * what Prometheus' own clients write: the shortest digits that read back
 * as v, in exponent form when the decimal exponent is < -4 or >= 6
 * ("1e+06", "100000", "0.0001", "1e-05"). Returns the length. */
static size_t format_go(char *out, size_t cap, double v)
{
    if (isnan(v))
        return (size_t)snprintf(out, cap, "NaN");
    if (isinf(v))
        return (size_t)snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return (size_t)snprintf(out, cap, signbit(v) ? "-0" : "0");
    char e[40];
    /* The shortest round-trip representation has at most 17 digits; if
     * one with k <= 15 digits exists, the 15-digit rounding is it padded
     * with zeros, so three tries suffice. Subnormals carry fewer
     * significant bits, so for them every precision is tried. */
    for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v || prec == 17)
            break;
    }
    /* e is "-d.ddddde+XX": split into sign, digits and exponent. */
    const char *p = e;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *o = out;
    char *end = out + cap - 1;
#define PUT(c)                                                                                                 \
    do {                                                                                                       \
        if (o < end)                                                                                           \
            *o++ = (c);                                                                                        \
    } while (0)
    if (neg)
        PUT('-');
    if (exp < -4 || exp >= 6) {
        PUT(digits[0]);
        if (nd > 1) {
            PUT('.');
            for (size_t i = 1; i < nd; i++)
                PUT(digits[i]);
        }
        PUT('e');
        PUT(exp < 0 ? '-' : '+');
        int ax = exp < 0 ? -exp : exp;
        if (ax >= 100)
            PUT((char)('0' + ax / 100));
        PUT((char)('0' + ax / 10 % 10));
        PUT((char)('0' + ax % 10));
    } else if (exp < 0) {
        PUT('0');
        PUT('.');
        for (int i = -1; i > exp; i--)
            PUT('0');
        for (size_t i = 0; i < nd; i++)
            PUT(digits[i]);
    } else {
        for (int i = 0; i <= exp; i++)
            PUT((size_t)i < nd ? digits[i] : '0');
        if (nd > (size_t)exp + 1) {
            PUT('.');
            for (size_t i = (size_t)exp + 1; i < nd; i++)
                PUT(digits[i]);
        }
    }
#undef PUT
    *o = '\0';
    return (size_t)(o - out);
}

static size_t format_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Sample values: integers (the common case for counters) are written in
 * full, exactly and fast; anything else as Go would. */
static size_t format_value(char *out, size_t cap, double v)
{
    if (v >= 0 && v < 9007199254740992.0 && v == (double)(uint64_t)v && !(v == 0 && signbit(v)))
        return format_u64(out, (uint64_t)v);
    if (v < 0 && v > -9007199254740992.0 && v == -(double)(uint64_t)-v) {
        out[0] = '-';
        return 1 + format_u64(out + 1, (uint64_t)-v);
    }
    return format_go(out, cap, v);
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                 */

struct out {
    void (*emit)(void *arg, const char *p, size_t n);
    void *arg;
    size_t len;
    char buf[16384];
};

static void out_flush(struct out *o)
{
    if (o->len)
        o->emit(o->arg, o->buf, o->len);
    o->len = 0;
}

static void out_put(struct out *o, const char *p, size_t n)
{
    if (o->len + n > sizeof o->buf) {
        out_flush(o);
        if (n > sizeof o->buf) {
            o->emit(o->arg, p, n);
            return;
        }
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_chr(struct out *o, char c)
{
    if (o->len == sizeof o->buf)
        out_flush(o);
    o->buf[o->len++] = c;
}

/* Escapes backslash and newline, and the double quote when quote is set
 * (label values in both formats; HELP text in OpenMetrics only). */
static void out_escaped(struct out *o, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quote)
            rep = "\\\"";
        if (!rep)
            continue;
        out_put(o, run, (size_t)(s - run));
        out_put(o, rep, 2);
        run = s + 1;
    }
    out_put(o, run, (size_t)(s - run));
}

static void out_value(struct out *o, double v)
{
    char num[40];
    size_t n = format_value(num, sizeof num, v);
    out_put(o, num, n);
}

static void out_u64(struct out *o, uint64_t v)
{
    char num[24];
    out_put(o, num, format_u64(num, v));
}

/* Writes `{a="x",b="y"` plus an optional le label, and the closing brace;
 * nothing when there are no labels at all. */
static void out_labels(struct out *o, const struct otr_metric *m, const struct labelset *ls, const char *le)
{
    if (m->n_labels == 0 && !le)
        return;
    out_chr(o, '{');
    for (size_t i = 0; i < m->n_labels; i++) {
        if (i)
            out_chr(o, ',');
        out_str(o, m->label_names[i]);
        out_put(o, "=\"", 2);
        out_escaped(o, ls->values[i], true);
        out_chr(o, '"');
    }
    if (le) {
        if (m->n_labels)
            out_chr(o, ',');
        out_put(o, "le=\"", 4);
        out_str(o, le);
        out_chr(o, '"');
    }
    out_chr(o, '}');
}

static void out_sample(struct out *o, const struct otr_metric *m, const char *suffix, const struct labelset *ls,
                       const char *le)
{
    out_str(o, m->name);
    if (suffix)
        out_str(o, suffix);
    out_labels(o, m, ls, le);
    out_chr(o, ' ');
}

static int labelset_cmp(const struct labelset *a, const struct labelset *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a->values[i], b->values[i]);
        if (c)
            return c;
    }
    return 0;
}

/* qsort has no context argument in C11; the label count is passed through
 * a thread-local (rendering may run on several threads at once). */
static _Thread_local size_t sort_n_labels;

static int labelset_qsort_cmp(const void *a, const void *b)
{
    return labelset_cmp(*(struct labelset *const *)a, *(struct labelset *const *)b, sort_n_labels);
}

static void family_sort(struct otr_metric *m)
{
    if (m->sorted_valid)
        return;
    sort_n_labels = m->n_labels;
    /* qsort's array may not be NULL, even with no elements. */
    if (m->n_sets > 1)
        qsort(m->sorted, m->n_sets, sizeof *m->sorted, labelset_qsort_cmp);
    m->sorted_valid = true;
}

static void render_header(struct out *o, const struct otr_metric *m, enum otr_metrics_format fmt)
{
    bool om = fmt == OTR_METRICS_OPENMETRICS;
    const char *fam = om ? m->om_name : m->name;
    out_put(o, "# TYPE ", 7);
    out_str(o, fam);
    out_chr(o, ' ');
    out_str(o, type_name(m->type));
    out_chr(o, '\n');
    if (m->help[0]) {
        out_put(o, "# HELP ", 7);
        out_str(o, fam);
        out_chr(o, ' ');
        out_escaped(o, m->help, om);
        out_chr(o, '\n');
    }
}

static void render_histogram(struct out *o, const struct otr_metric *m, const struct labelset *ls,
                             unsigned n_shards)
{
    double sum = 0;
    uint64_t cumulative = 0;
    char le[40];
    for (size_t b = 0; b <= m->n_buckets; b++) {
        for (unsigned s = 0; s < n_shards; s++)
            if (ls->shards[s])
                cumulative += atomic_load_explicit(&ls->shards[s]->buckets[b], memory_order_relaxed);
        if (b < m->n_buckets)
            format_go(le, sizeof le, m->buckets[b]);
        else
            strcpy(le, "+Inf");
        out_sample(o, m, "_bucket", ls, le);
        out_u64(o, cumulative);
        out_chr(o, '\n');
    }
    for (unsigned s = 0; s < n_shards; s++)
        if (ls->shards[s])
            sum += cell_load_double(&ls->shards[s]->v);
    out_sample(o, m, "_sum", ls, NULL);
    out_value(o, sum);
    out_chr(o, '\n');
    out_sample(o, m, "_count", ls, NULL);
    out_u64(o, cumulative);
    out_chr(o, '\n');
}

static void render_family(struct out *o, struct otr_metric *m, enum otr_metrics_format fmt, unsigned n_shards)
{
    render_header(o, m, fmt);
    if (m->fn) {
        out_sample(o, m, NULL, NULL, NULL);
        out_value(o, m->fn(m->fn_arg));
        out_chr(o, '\n');
        return;
    }
    family_sort(m);
    for (size_t i = 0; i < m->n_sets; i++) {
        const struct labelset *ls = m->sorted[i];
        if (m->type == OTR_METRIC_HISTOGRAM) {
            render_histogram(o, m, ls, n_shards);
            continue;
        }
        double v = 0;
        for (unsigned s = 0; s < n_shards; s++)
            if (ls->shards[s])
                v += cell_load_double(&ls->shards[s]->v);
        out_sample(o, m, NULL, ls, NULL);
        out_value(o, v);
        out_chr(o, '\n');
    }
}

int otr_registry_render(struct otr_registry *r, enum otr_metrics_format fmt,
                        void (*emit)(void *arg, const char *p, size_t n), void *arg)
{
    struct out *o = xmalloc(sizeof *o);
    o->emit = emit;
    o->arg = arg;
    o->len = 0;
    /* The mutex keeps families and label sets still while we walk them;
     * updates to values do not take it and go on meanwhile. */
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_families; i++)
        render_family(o, r->families[i], fmt, r->n_shards);
    pthread_mutex_unlock(&r->mu);
    if (fmt == OTR_METRICS_OPENMETRICS)
        out_put(o, "# EOF\n", 6);
    out_flush(o);
    free(o);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Content negotiation                                                       */

static const char om_type[] = "application/openmetrics-text";

/* Whether one media range of an Accept list (without the comma) names
 * OpenMetrics with a non-zero quality. */
static bool media_range_is_om(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    size_t tl = sizeof om_type - 1;
    if (n < tl || strncasecmp(p, om_type, tl) != 0)
        return false;
    p += tl;
    n -= tl;
    if (n && *p != ';' && *p != ' ' && *p != '\t')
        return false; /* a longer type name */
    /* Look for q=0, q=0.0, q=0.00, q=0.000 among the parameters. */
    while (n) {
        const char *semi = memchr(p, ';', n);
        if (!semi)
            break;
        n -= (size_t)(semi + 1 - p);
        p = semi + 1;
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        if (n >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            const char *v = p + 2;
            size_t vn = n - 2;
            bool zero = vn && v[0] == '0';
            for (size_t i = 1; zero && i < vn && v[i] != ';' && v[i] != ' ' && v[i] != '\t'; i++)
                zero = v[i] == '.' || v[i] == '0';
            if (zero)
                return false;
        }
    }
    return true;
}

enum otr_metrics_format otr_metrics_negotiate(const char *accept)
{
    if (!accept)
        return OTR_METRICS_PROMETHEUS;
    const char *p = accept;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (media_range_is_om(p, n))
            return OTR_METRICS_OPENMETRICS;
        if (!comma)
            return OTR_METRICS_PROMETHEUS;
        p = comma + 1;
    }
}

const char *otr_metrics_content_type(enum otr_metrics_format fmt)
{
    return fmt == OTR_METRICS_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                          : "text/plain; version=0.0.4; charset=utf-8";
}
