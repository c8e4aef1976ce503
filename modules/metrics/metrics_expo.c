/*
 * Exposition: merge by family name, then write each family's metadata and
 * series. Label sets were rendered once when the snapshot was built, so
 * this is mostly memcpy and number formatting.
 */
#include "metrics_expo.h"

#include "metrics_hash.h"
#include "metrics_number.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>


/* A slot of the tables that find duplicates: by source (key only) or by
 * written series (see dedup_first). */
struct mexpo_seen {
    uint64_t key;      /* 0: empty slot */
    uint32_t off, len; /* of the written series in the output */
};

/* The scratch table, cleared, with room for n entries at half load;
 * *mask is its size - 1. */
static struct mexpo_seen *seen_reset(struct mexpo_scratch *scratch, size_t n, size_t *mask)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    if (scratch->n_seen < cap) {
        free(scratch->seen);
        scratch->seen = xmalloc(cap * sizeof *scratch->seen);
        scratch->n_seen = cap;
    }
    memset(scratch->seen, 0, cap * sizeof *scratch->seen);
    *mask = cap - 1;
    return scratch->seen;
}

struct entry {
    const struct msnap *snap;
    const struct msnap_family *fam;
    uint32_t next; /* next entry of the same family name, UINT32_MAX: none */
    uint32_t src;  /* index of the snapshot */
};

/* A snapshot's target labels, for telling sources apart (see
 * targets_tell_apart). */
struct snap_key {
    uint64_t names;  /* hash of the target label names, in order */
    uint64_t values; /* hash of the target labels, in order */
    bool apart;      /* it has target labels and no series skips one */
    bool all_distinct; /* keys[0] only: all sources that are apart have the same
                        * label names and pairwise different values */
};

/* Sets keys[0].all_distinct (see struct snap_key). */
/* Adds key to a table of keys; false if it was there. */
static bool seen_add_key(struct mexpo_seen *seen, size_t mask, uint64_t key)
{
    size_t j = key & mask;
    for (; seen[j].key; j = (j + 1) & mask)
        if (seen[j].key == key)
            return false;
    seen[j].key = key;
    return true;
}

static void keys_check_distinct(struct snap_key *keys, size_t n, struct mexpo_scratch *scratch)
{
    size_t mask;
    struct mexpo_seen *seen = seen_reset(scratch, n, &mask);
    const struct snap_key *first = NULL;
    bool distinct = true;
    for (size_t i = 0; i < n && distinct; i++) {
        if (!keys[i].apart)
            continue;
        if (!first)
            first = &keys[i];
        distinct = keys[i].names == first->names && seen_add_key(seen, mask, keys[i].values);
    }
    keys[0].all_distinct = distinct;
}

static struct snap_key snap_key_of(const struct msnap *s)
{
    struct snap_key k = {0, 0, s && s->n_target_labels > 0, false};
    if (!k.apart)
        return k;
    for (uint32_t t = 0; t < s->n_target_labels; t++) {
        const char *l = s->target_labels[t];
        const char *eq = memchr(l, '=', s->target_label_len[t]);
        k.names = metrics_hash(l, eq ? (size_t)(eq - l) : s->target_label_len[t], k.names + 1);
        k.values = metrics_hash(l, s->target_label_len[t], k.values + 1);
    }
    for (uint32_t i = 0; i < s->n_series && k.apart; i++)
        k.apart = (s->series[i].flags & (uint8_t)~MSNAP_HAS_TS) == 0;
    return k;
}

static bool entry_same_name(const struct entry *a, const struct entry *b)
{
    return a->fam->name_len == b->fam->name_len &&
           memcmp(a->snap->text + a->fam->name_off, b->snap->text + b->fam->name_off, a->fam->name_len) == 0;
}

/* Groups entries by family name with a hash table: O(families), where
 * sorting 100,000 names would cost tens of milliseconds. Each slot holds
 * a group's name hash next to its index, so a probe compares names only
 * on a full hash match (following an entry to its name is a cache miss
 * per step on large tables). Fills heads[] with each group's first entry,
 * in order of first appearance (sources in order: the registry, statsd,
 * then targets); returns their number. */
static size_t group_by_name(struct entry *es, size_t k, uint32_t *heads, struct mexpo_scratch *scratch)
{
    size_t cap = 16;
    while (cap < 2 * k)
        cap *= 2;
    if (scratch->n_slots < cap) {
        free(scratch->slots);
        scratch->slots = xmalloc(cap * sizeof *scratch->slots);
        scratch->n_slots = cap;
    }
    uint64_t *slots = scratch->slots; /* hash << 32 | group + 1; 0: empty */
    memset(slots, 0, cap * sizeof *slots);
    uint32_t *tails = scratch->tails;
    size_t n_groups = 0;
    for (size_t i = 0; i < k; i++) {
        es[i].next = UINT32_MAX;
        uint32_t hash = es[i].fam->name_hash;
        size_t j = hash & (cap - 1);
        for (; slots[j]; j = (j + 1) & (cap - 1)) {
            uint32_t g = (uint32_t)slots[j] - 1;
            if ((uint32_t)(slots[j] >> 32) == hash && entry_same_name(&es[heads[g]], &es[i])) {
                es[tails[g]].next = (uint32_t)i;
                tails[g] = (uint32_t)i;
                break;
            }
        }
        if (!slots[j]) {
            heads[n_groups] = tails[n_groups] = (uint32_t)i;
            slots[j] = (uint64_t)hash << 32 | (uint32_t)++n_groups;
        }
    }
    return n_groups;
}

static const char *om_type_name(enum prom_type t)
{
    static const char *const names[] = {
        [PROM_UNTYPED] = "unknown", [PROM_COUNTER] = "counter", [PROM_GAUGE] = "gauge",
        [PROM_HISTOGRAM] = "histogram", [PROM_SUMMARY] = "summary", [PROM_GAUGEHISTOGRAM] = "gaugehistogram",
        [PROM_INFO] = "info", [PROM_STATESET] = "stateset",
    };
    return names[t];
}

/* The suffix a series is written with, or -1 to leave it out: the text
 * format has no _created samples and no gauge histograms, and OpenMetrics
 * counters always end in _total. */
static int written_suffix(enum mexpo_format fmt, enum prom_type t, enum msnap_suffix s)
{
    if (fmt == MEXPO_OPENMETRICS)
        return t == PROM_COUNTER && s == MSFX_NONE ? MSFX_TOTAL : (int)s;
    if (s == MSFX_CREATED || t == PROM_GAUGEHISTOGRAM)
        return -1;
    return (int)s;
}

/* The name in HELP/TYPE lines: the family's in OpenMetrics; in the text
 * format a counter's or info's is its samples' name. */
static void add_meta_name(struct mbuf *out, enum mexpo_format fmt, const struct entry *e)
{
    const struct msnap_family *f = e->fam;
    mbuf_add(out, e->snap->text + f->name_off, f->name_len);
    if (fmt == MEXPO_PROMETHEUS) {
        if (f->type == PROM_COUNTER && e->snap->series[f->first].suffix == MSFX_TOTAL)
            mbuf_add(out, "_total", 6);
        else if (f->type == PROM_INFO)
            mbuf_add(out, "_info", 5);
    }
}

static void add_meta(struct mbuf *out, enum mexpo_format fmt, const struct entry *e, const struct entry *help)
{
    const struct msnap_family *f = e->fam;
    if (help) {
        mbuf_add(out, "# HELP ", 7);
        add_meta_name(out, fmt, e);
        mbuf_addc(out, ' ');
        mbuf_add_help(out, help->snap->text + help->fam->help_off, help->fam->help_len, fmt == MEXPO_OPENMETRICS);
        mbuf_addc(out, '\n');
    }
    mbuf_add(out, "# TYPE ", 7);
    add_meta_name(out, fmt, e);
    mbuf_addc(out, ' ');
    mbuf_adds(out, fmt == MEXPO_OPENMETRICS ? om_type_name(f->type) : prom_type_name(f->type));
    mbuf_addc(out, '\n');
}

static void add_timestamp(struct mbuf *out, enum mexpo_format fmt, int64_t ms)
{
    mbuf_addc(out, ' ');
    if (fmt == MEXPO_PROMETHEUS) {
        mbuf_add_int64(out, ms);
        return;
    }
    /* OpenMetrics timestamps are seconds. */
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        sec -= 1;
        frac += 1000;
    }
    mbuf_add_int64(out, sec);
    char d[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
    mbuf_add(out, d, 4);
}

/* The target labels every series of a snapshot carries when it skips
 * none (the common case), joined once: ",a=\"1\",b=\"2\"". */
static size_t join_targets(const struct msnap *s, char *out, size_t cap)
{
    size_t len = 0;
    for (uint32_t t = 0; t < s->n_target_labels; t++) {
        if (len + 1 + s->target_label_len[t] > cap)
            return 0;
        out[len++] = ',';
        memcpy(out + len, s->target_labels[t], s->target_label_len[t]);
        len += s->target_label_len[t];
    }
    return len;
}

/* Duplicates across sources: Prometheus keeps two sources' series apart
 * by their target labels; a series still identical after labelling (two
 * targets on one host:port, a scraped series equal to a statsd one) is a
 * collision, and the earlier source's series is kept. Only families that
 * several sources have are checked, so the usual exposition pays nothing.
 * A series is keyed by its written "name{labels}" text, labels in any
 * order: the key sums a hash of each label pair. */

struct dedup {
    struct mexpo_seen *slots;
    size_t mask;
    const struct mbuf *out;
};

/* The next label pair of "a=\"1\",b=\"x\\\"y\"" from *p, as a span; false at
 * the end. Values may hold escaped quotes. */
static bool next_pair(const char **p, const char *end, const char **pair, size_t *len)
{
    const char *q = *p;
    if (q >= end)
        return false;
    const char *v = memchr(q, '"', (size_t)(end - q));
    if (!v)
        return false;
    for (v++; v < end && *v != '"'; v++)
        if (*v == '\\')
            v++;
    if (v >= end)
        return false;
    *pair = q;
    *len = (size_t)(v + 1 - q);
    *p = v + 1 < end && v[1] == ',' ? v + 2 : v + 1;
    return true;
}

/* Splits a written series "name{labels}" into its name and label text. */
static void split_series(const char *s, size_t n, size_t *name_len, const char **labels, size_t *labels_len)
{
    const char *brace = memchr(s, '{', n);
    *name_len = brace ? (size_t)(brace - s) : n;
    *labels = brace ? brace + 1 : s + n;
    *labels_len = brace ? n - *name_len - 2 : 0;
}

static uint64_t series_key(const char *s, size_t n)
{
    size_t nn, ln;
    const char *l, *pair;
    split_series(s, n, &nn, &l, &ln);
    uint64_t sum = 0;
    size_t plen;
    for (const char *p = l; next_pair(&p, l + ln, &pair, &plen);)
        sum += metrics_hash_mix(metrics_hash(pair, plen, 5) + 1);
    uint64_t key = metrics_hash(s, nn, 11) ^ metrics_hash_mix(sum + 0x9e3779b97f4a7c15ull);
    return key ? key : 1;
}

static bool has_pair(const char *l, size_t ln, const char *pair, size_t plen)
{
    const char *q;
    size_t qlen;
    for (const char *p = l; next_pair(&p, l + ln, &q, &qlen);)
        if (qlen == plen && memcmp(q, pair, plen) == 0)
            return true;
    return false;
}

/* Exact comparison, labels in any order (names are unique in a series). */
static bool same_series(const char *a, size_t an, const char *b, size_t bn)
{
    size_t a_nn, a_ln, b_nn, b_ln, plen;
    const char *al, *bl, *pair;
    split_series(a, an, &a_nn, &al, &a_ln);
    split_series(b, bn, &b_nn, &bl, &b_ln);
    if (a_nn != b_nn || memcmp(a, b, a_nn) != 0 || a_ln != b_ln)
        return false;
    for (const char *p = al; next_pair(&p, al + a_ln, &pair, &plen);)
        if (!has_pair(bl, b_ln, pair, plen))
            return false;
    return true;
}

/* Records the series written at out[off, off+len); false if an identical
 * one was written before. */
static bool dedup_first(struct dedup *d, size_t off, size_t len)
{
    const char *s = d->out->p + off;
    uint64_t key = series_key(s, len);
    size_t j = key & d->mask;
    for (; d->slots[j].key; j = (j + 1) & d->mask) {
        const struct mexpo_seen *e = &d->slots[j];
        if (e->key == key && same_series(d->out->p + e->off, e->len, s, len))
            return false;
    }
    d->slots[j] = (struct mexpo_seen){key, (uint32_t)off, (uint32_t)len};
    return true;
}

/* dd: NULL, or the series of this family seen so far (a family several
 * sources have); a duplicate is not written and counted in *dups. */
static uint64_t add_series(struct mbuf *out, enum mexpo_format fmt, unsigned flags, const struct entry *e,
                           struct dedup *dd, uint64_t *dups)
{
    const struct msnap *s = e->snap;
    const struct msnap_family *f = e->fam;
    char joined[2048];
    size_t joined_len = join_targets(s, joined, sizeof joined);
    size_t targets_max = 0;
    for (uint32_t t = 0; t < s->n_target_labels; t++)
        targets_max += 1 + s->target_label_len[t];
    uint64_t n = 0;
    for (uint32_t i = f->first; i < f->first + f->n_series; i++) {
        const struct msnap_series *se = &s->series[i];
        int sfx = written_suffix(fmt, (enum prom_type)f->type, (enum msnap_suffix)se->suffix);
        if (sfx < 0)
            continue;
        /* One reservation per series, then plain stores: this loop is the
         * exposition's hot path. */
        size_t sfx_len = strlen(msnap_suffix_text[sfx]);
        char *w = mbuf_reserve(out, f->name_len + sfx_len + se->labels_len + targets_max + 2 * METRICS_NUM_MAX + 8);
        size_t line = out->len;
        memcpy(w, s->text + f->name_off, f->name_len);
        w += f->name_len;
        memcpy(w, msnap_suffix_text[sfx], sfx_len);
        w += sfx_len;
        uint8_t skip = se->flags & (uint8_t)~MSNAP_HAS_TS;
        bool any_target = s->n_target_labels > 0 && (skip != (1u << s->n_target_labels) - 1);
        if (se->labels_len || any_target) {
            *w++ = '{';
            memcpy(w, s->text + se->labels_off, se->labels_len);
            w += se->labels_len;
            bool comma = se->labels_len > 0;
            if (!skip && joined_len) {
                memcpy(w, joined + !comma, joined_len - !comma);
                w += joined_len - !comma;
            } else {
                for (uint32_t t = 0; t < s->n_target_labels; t++) {
                    if (skip & (1u << t))
                        continue;
                    if (comma)
                        *w++ = ',';
                    comma = true;
                    memcpy(w, s->target_labels[t], s->target_label_len[t]);
                    w += s->target_label_len[t];
                }
            }
            *w++ = '}';
        }
        if (dd && !dedup_first(dd, line, (size_t)(w - out->p) - line)) {
            (*dups)++;
            continue; /* out->len still ends before this line */
        }
        *w++ = ' ';
        w += metrics_format_double(w, se->value);
        out->len = (size_t)(w - out->p);
        if ((se->flags & MSNAP_HAS_TS) && !(flags & MEXPO_NO_TIMESTAMPS))
            add_timestamp(out, fmt, se->ts_ms);
        mbuf_addc(out, '\n');
        n++;
    }
    return n;
}

/* Whether the sources of a family are told apart by their target labels:
 * every series carries all its source's target labels (none skipped for
 * honor_labels), all sources have the same label names, and no two have
 * the same values. Then no series can equal another source's, and the
 * usual node exposition (many pods, same names) skips the check. */
static bool targets_tell_apart(const struct entry *es, uint32_t head, const struct snap_key *keys,
                               struct mexpo_scratch *scratch, size_t sources)
{
    if (keys[0].all_distinct) {
        /* Every source with target labels differs from every other: only
         * sources without them (registry, statsd) need the check. */
        bool all = true;
        for (uint32_t x = head; x != UINT32_MAX && all; x = es[x].next)
            all = es[x].fam->type != es[head].fam->type || keys[es[x].src].apart;
        if (all)
            return true;
    }
    size_t mask;
    struct mexpo_seen *seen = seen_reset(scratch, sources, &mask);
    const struct snap_key *k0 = &keys[es[head].src];
    for (uint32_t x = head; x != UINT32_MAX; x = es[x].next) {
        if (es[x].fam->type != es[head].fam->type)
            continue;
        const struct snap_key *k = &keys[es[x].src];
        if (!k->apart || k->names != k0->names || !seen_add_key(seen, mask, k->values))
            return false;
    }
    return true;
}

/* For a family that more than one source has, whose series could be
 * identical: an empty table sized for all its series. False when there
 * is nothing to check. */
static bool dedup_prepare(struct dedup *d, const struct entry *es, uint32_t head, const struct snap_key *keys,
                          const struct mbuf *out, struct mexpo_scratch *scratch)
{
    const struct entry *first = &es[head];
    size_t series = 0, sources = 0;
    for (uint32_t x = head; x != UINT32_MAX; x = es[x].next) {
        if (es[x].fam->type != first->fam->type)
            continue;
        sources++;
        series += es[x].fam->n_series;
    }
    if (sources < 2 || targets_tell_apart(es, head, keys, scratch, sources))
        return false;
    d->slots = seen_reset(scratch, series, &d->mask);
    d->out = out;
    return true;
}

void mexpo_render(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, struct mbuf *out,
                  struct mexpo_stats *stats)
{
    mexpo_render_flags(snaps, n, fmt, 0, out, stats);
}

void mexpo_scratch_fini(struct mexpo_scratch *s)
{
    free(s->entries);
    free(s->heads);
    free(s->tails);
    free(s->slots);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

void mexpo_render_flags(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, unsigned flags,
                        struct mbuf *out, struct mexpo_stats *stats)
{
    struct mexpo_scratch scratch = {0};
    mexpo_render_scratch(snaps, n, fmt, flags, out, stats, &scratch);
    mexpo_scratch_fini(&scratch);
}

void mexpo_render_scratch(struct msnap *const *snaps, size_t n, enum mexpo_format fmt, unsigned flags,
                          struct mbuf *out, struct mexpo_stats *stats, struct mexpo_scratch *scratch)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += snaps[i] ? snaps[i]->n_fams : 0;
    if (scratch->cap < total || !scratch->entries) {
        size_t cap = total > 16 ? total + total / 4 : 16;
        free(scratch->entries);
        free(scratch->heads);
        free(scratch->tails);
        scratch->entries = xmalloc(cap * sizeof(struct entry));
        scratch->heads = xmalloc(cap * sizeof *scratch->heads);
        scratch->tails = xmalloc(cap * sizeof *scratch->tails);
        scratch->cap = cap;
    }
    struct entry *es = scratch->entries;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t f = 0; snaps[i] && f < snaps[i]->n_fams; f++)
            es[k++] = (struct entry){snaps[i], &snaps[i]->fams[f], UINT32_MAX, (uint32_t)i};
    struct snap_key *keys = xmalloc((n ? n : 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = snap_key_of(snaps[i]);
    if (n)
        keys_check_distinct(keys, n, scratch);
    uint32_t *heads = scratch->heads;
    size_t n_groups = group_by_name(es, k, heads, scratch);
    /* Presize the output: label text, names and numbers of every series. */
    size_t estimate = 0;
    for (size_t i = 0; i < n; i++) {
        if (!snaps[i])
            continue;
        size_t targets = 0;
        for (uint32_t t = 0; t < snaps[i]->n_target_labels; t++)
            targets += 1 + snaps[i]->target_label_len[t];
        estimate += snaps[i]->text_len + snaps[i]->n_series * (targets + 48);
        /* HELP and TYPE lines repeat the family name twice, and HELP its text. */
        for (uint32_t f = 0; f < snaps[i]->n_fams; f++)
            estimate += 2 * snaps[i]->fams[f].name_len + snaps[i]->fams[f].help_len + 40;
    }
    mbuf_reserve(out, estimate);

    for (size_t g = 0; g < n_groups; g++) {
        const struct entry *first = &es[heads[g]], *help = NULL;
        for (uint32_t x = heads[g]; x != UINT32_MAX; x = es[x].next) {
            if (es[x].fam->type != first->fam->type) {
                stats->conflicts++;
                continue;
            }
            if (!help && es[x].fam->help_len)
                help = &es[x];
        }
        if (fmt == MEXPO_PROMETHEUS && first->fam->type == PROM_GAUGEHISTOGRAM)
            continue;
        add_meta(out, fmt, first, help);
        stats->families++;
        struct dedup dd;
        bool several = dedup_prepare(&dd, es, heads[g], keys, out, scratch);
        for (uint32_t x = heads[g]; x != UINT32_MAX; x = es[x].next)
            if (es[x].fam->type == first->fam->type)
                stats->series += add_series(out, fmt, flags, &es[x], several ? &dd : NULL, &stats->duplicates);
    }
    free(keys);
    if (fmt == MEXPO_OPENMETRICS)
        mbuf_add(out, "# EOF\n", 6);
}

/* Accept: "application/openmetrics-text;version=1.0.0;q=0.5, text/plain;q=0.4".
 * OpenMetrics wins when listed with a q greater than zero and not lower
 * than text/plain's. */
enum mexpo_format mexpo_negotiate(const char *accept)
{
    if (!accept)
        return MEXPO_PROMETHEUS;
    double q_om = -1, q_text = -1;
    const char *p = accept;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *semi = p;
        while (semi < end && *semi != ';')
            semi++;
        const char *type_end = semi;
        while (type_end > p && (type_end[-1] == ' ' || type_end[-1] == '\t'))
            type_end--;
        double q = 1;
        for (const char *s = semi; s < end;) {
            const char *a = s + 1;
            while (a < end && *a == ' ')
                a++;
            if (end - a > 2 && (a[0] == 'q' || a[0] == 'Q') && a[1] == '=')
                q = strtod(a + 2, NULL);
            while (a < end && *a != ';')
                a++;
            s = a;
        }
        size_t tn = (size_t)(type_end - p);
        if (tn == 28 && strncasecmp(p, "application/openmetrics-text", 28) == 0)
            q_om = q > q_om ? q : q_om;
        else if ((tn == 10 && strncasecmp(p, "text/plain", 10) == 0) || (tn == 3 && strncmp(p, "*/*", 3) == 0))
            q_text = q > q_text ? q : q_text;
        p = *end ? end + 1 : end;
    }
    return q_om > 0 && q_om >= q_text ? MEXPO_OPENMETRICS : MEXPO_PROMETHEUS;
}

const char *mexpo_content_type(enum mexpo_format fmt)
{
    return fmt == MEXPO_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                    : "text/plain; version=0.0.4; charset=utf-8";
}
