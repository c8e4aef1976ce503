/*
 * statsd aggregation store. See metrics_store.h for the model.
 */
#include "metrics_store.h"

#include <stdlib.h>
#include <string.h>

#include "metrics_buf.h"
#include "metrics_hash.h"
#include "metrics_number.h"

struct mhist {
    double sum, count;
    double counts[]; /* per bucket, not cumulative; +Inf is count - sum of these */
};

struct mset {
    uint32_t n, cap; /* cap: slots, a power of two */
    uint64_t *slots; /* member hashes, 0 = empty */
};

#define WINDOW_UNSET UINT32_MAX

/* A statsd set counts distinct members per window of statsd.set_window,
 * windows aligned on the clock (window k covers [k, k+1) * set_window),
 * so all workers' stores agree on them. Exposed: the members of the last
 * complete window; during the series' first window, those so far. */
struct mset_windows {
    struct mset cur, prev;
    uint32_t window; /* index of cur's window; WINDOW_UNSET after a change of set_window */
    bool has_prev;   /* a window of this series has completed */
};

/* An interned label text, rendered and sorted ("a=\"1\",b=\"2\""). */
struct mlabelset {
    uint32_t hash;
    uint32_t len;
    char text[];
};

struct mseries {
    uint32_t fam;
    uint32_t labels; /* index of its label set */
    uint32_t hash;   /* of (fam, labels) */
    uint32_t stamp;
    union {
        double value;
        struct mhist *hist;
        struct mset_windows *set;
    } u;
};

/* Tables grow past 80% full: few probes with 4-byte slots, and 100,000
 * entries still fit 131,072 slots. */
static bool table_full(uint32_t n, size_t mask)
{
    return (uint64_t)n * 5 > (uint64_t)(mask + 1) * 4;
}

#define ARENA_CHUNK 65536

struct mstore_arena_chunk {
    struct mstore_arena_chunk *next;
    size_t used, cap;
    char data[];
};

/* align: a power of two up to 8 (names need none, doubles 8). */
static void *arena_alloc(struct mstore *st, size_t n, size_t align)
{
    struct mstore_arena_chunk *c = st->arena;
    if (c)
        c->used = (c->used + align - 1) & ~(align - 1);
    if (!c || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        c = xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = st->arena;
        st->arena = c;
        st->arena_bytes += sizeof *c + cap;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

/* The store keeps its own copy of the configuration, so it may outlive
 * the generation whose parsed config it came from. */
static struct mstore_conf *conf_copy(const struct mstore_conf *c)
{
    struct mstore_conf *d = xmalloc(sizeof *d);
    *d = *c;
    double *t = xmalloc((c->n_timer_buckets + c->n_hist_buckets + 1) * sizeof *t);
    memcpy(t, c->timer_buckets, c->n_timer_buckets * sizeof *t);
    memcpy(t + c->n_timer_buckets, c->hist_buckets, c->n_hist_buckets * sizeof *t);
    d->timer_buckets = t;
    d->hist_buckets = t + c->n_timer_buckets;
    return d;
}

static void conf_free(const struct mstore_conf *c)
{
    free((void *)c->timer_buckets);
    free((void *)c);
}

static bool same_buckets(const double *a, size_t na, const double *b, size_t nb)
{
    return na == nb && memcmp(a, b, na * sizeof *a) == 0;
}

static struct mstore_family *family_at(const struct mstore *st, uint32_t i)
{
    return mvec_at(&st->fams, i);
}

static struct mseries *series_at(const struct mstore *st, uint32_t i)
{
    return mvec_at(&st->series, i);
}

static const struct mlabelset *labelset_at(const struct mstore *st, uint32_t i)
{
    return *(struct mlabelset **)mvec_at(&st->labelsets, i);
}

/* Empty tables and arena; conf, limit and lock are the caller's. */
static void store_data_init(struct mstore *st)
{
    mvec_init(&st->fams, sizeof(struct mstore_family));
    st->fam_mask = 15;
    st->fam_slots = xcalloc(st->fam_mask + 1, sizeof *st->fam_slots);
    mvec_init(&st->labelsets, sizeof(struct mlabelset *));
    st->ls_mask = 15;
    st->ls_slots = xcalloc(st->ls_mask + 1, sizeof *st->ls_slots);
    mvec_init(&st->series, sizeof(struct mseries));
    st->mask = 255;
    st->slots = xcalloc(st->mask + 1, sizeof *st->slots);
    st->arena = NULL;
    st->arena_bytes = 0;
}

void mstore_init(struct mstore *st, const struct mstore_conf *conf, struct mstore_limit *limit)
{
    memset(st, 0, sizeof *st);
    st->conf = conf_copy(conf);
    st->limit = limit;
    pthread_mutex_init(&st->lock, NULL);
    store_data_init(st);
}

/* Frees series, families and tables, releasing the series from the limit. */
static void store_data_free(struct mstore *st)
{
    for (uint32_t i = 0; i < st->series.n; i++) {
        struct mseries *s = series_at(st, i);
        if (family_at(st, s->fam)->kind == STATSD_SET) {
            free(s->u.set->cur.slots);
            free(s->u.set->prev.slots);
        }
    }
    if (st->limit)
        atomic_fetch_sub(&st->limit->used, st->series.n);
    for (struct mstore_arena_chunk *c = st->arena, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    mvec_fini(&st->fams);
    mvec_fini(&st->labelsets);
    mvec_fini(&st->series);
    free(st->fam_slots);
    free(st->ls_slots);
    free(st->slots);
}

void mstore_fini(struct mstore *st)
{
    store_data_free(st);
    conf_free(st->conf);
    pthread_mutex_destroy(&st->lock);
}

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

size_t mstore_sanitize_name(const char *p, size_t n, char *out)
{
    if (n == 0 || n > MSTORE_MAX_NAME - 1)
        return 0;
    size_t len = 0;
    bool any = false;
    if (is_digit(p[0]))
        out[len++] = '_';
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool valid = is_alpha_(c) || is_digit(c) || c == ':';
        out[len++] = valid ? c : '_';
        any |= valid && c != '_';
    }
    out[len] = '\0';
    return any ? len : 0;
}

/* A tag key as a label name: like a metric name without ':'. Reserved
 * "__" names get the exported_ prefix. Returns the length, 0 if empty. */
static size_t sanitize_label(const char *p, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    if (n + 10 > cap)
        return 0;
    if (n >= 2 && p[0] == '_' && p[1] == '_') {
        memcpy(out, "exported_", 9);
        len = 9;
    } else if (is_digit(p[0])) {
        out[len++] = '_';
    }
    for (size_t i = 0; i < n; i++)
        out[len++] = is_alpha_(p[i]) || is_digit(p[i]) ? p[i] : '_';
    return len;
}

static void table_grow(struct mstore *st, uint32_t **slots, size_t *mask, uint32_t n,
                       uint32_t (*hash_of)(const struct mstore *, uint32_t));

static uint32_t family_hash_of(const struct mstore *st, uint32_t i)
{
    const struct mstore_family *f = family_at(st, i);
    return (uint32_t)metrics_hash(f->name, f->name_len, 0);
}

/* Counters are exposed in the OpenMetrics model: family x, sample
 * x_total (mstore_apply gave every counter name the suffix). */
static size_t family_expo_len(const struct mstore_family *f)
{
    return f->type == PROM_COUNTER && f->name_len > 6 ? f->name_len - 6u : f->name_len;
}

static enum prom_type type_of(enum statsd_type k)
{
    switch (k) {
    case STATSD_COUNTER: return PROM_COUNTER;
    case STATSD_GAUGE:
    case STATSD_SET: return PROM_GAUGE;
    default: return PROM_HISTOGRAM;
    }
}

/* Finds or creates the family; -1 when the name has another type, or
 * another kind of histogram (timer buckets vs histogram buckets); -2 when
 * it is new and the series cap is reached. */
static int64_t store_family_get(struct mstore *st, const char *name, size_t n, enum statsd_type kind)
{
    if (kind == STATSD_DISTRIBUTION)
        kind = STATSD_HISTOGRAM;
    size_t j = metrics_hash(name, n, 0) & st->fam_mask;
    for (; st->fam_slots[j]; j = (j + 1) & st->fam_mask) {
        struct mstore_family *f = family_at(st, st->fam_slots[j] - 1);
        if (f->name_len == n && memcmp(f->name, name, n) == 0)
            return f->kind == kind ? (int64_t)st->fam_slots[j] - 1 : -1;
    }
    /* A family only exists for its series: when no new series may be
     * created, no new family is either, so a flood of new names cannot
     * grow the store. The race with other workers is bounded by the
     * per-store cap. */
    if (st->limit && st->limit->max &&
        (atomic_load(&st->limit->used) >= st->limit->max || st->fams.n >= st->limit->max))
        return -2;
    uint32_t i = st->fams.n;
    struct mstore_family *f = mvec_push(&st->fams);
    char *copy = arena_alloc(st, n, 1);
    memcpy(copy, name, n);
    f->name = copy;
    f->name_len = (uint16_t)n;
    f->kind = (uint8_t)kind;
    f->type = (uint8_t)type_of(kind);
    f->expo_hash = msnap_name_hash(name, family_expo_len(f));
    st->fam_slots[j] = i + 1;
    if (table_full(st->fams.n, st->fam_mask))
        table_grow(st, &st->fam_slots, &st->fam_mask, st->fams.n, family_hash_of);
    return i;
}

struct label_ref {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

static int label_cmp(const void *a, const void *b)
{
    const struct label_ref *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static bool key_in(const struct label_ref *ls, size_t n, const char *k, size_t kn)
{
    for (size_t i = 0; i < n; i++)
        if (ls[i].key_len == kn && memcmp(ls[i].key, k, kn) == 0)
            return true;
    return false;
}

/* Renders the line's labels, sorted, into out; returns the length or -1. */
static int64_t store_render_labels(const struct statsd_line *line, const struct prom_label *extra, size_t n_extra,
                             bool histogram, char *out)
{
    struct label_ref ls[STATSD_MAX_TAGS + 8];
    char keys[2048];
    size_t n = 0, kused = 0;
    for (size_t i = 0; i < n_extra && i < 8; i++)
        if (extra[i].value.n)
            ls[n++] = (struct label_ref){extra[i].name.p, extra[i].name.n, extra[i].value.p, extra[i].value.n};
    size_t n_auth = n;
    for (uint32_t i = 0; i < line->n_tags; i++) {
        const struct statsd_tag *t = &line->tags[i];
        if (t->value.n == 0)
            continue;
        if (!prom_valid_utf8(t->value.p, t->value.n))
            return -1;
        char *k = keys + kused;
        size_t kn = sanitize_label(t->key.p, t->key.n, k, sizeof keys - kused);
        if (kn == 0)
            return -1;
        bool reserved = histogram && kn == 2 && memcmp(k, "le", 2) == 0;
        if (reserved || key_in(ls, n_auth, k, kn)) {
            if (kn + 9 + 1 > sizeof keys - kused)
                return -1;
            memmove(k + 9, k, kn);
            memcpy(k, "exported_", 9);
            kn += 9;
        }
        if (key_in(ls, n, k, kn))
            continue; /* a repeated tag: the first one counts */
        kused += kn;
        ls[n++] = (struct label_ref){k, kn, t->value.p, t->value.n};
    }
    if (n > 1)
        qsort(ls, n, sizeof ls[0], label_cmp);
    struct mbuf b = {.p = out, .len = 0, .cap = MSTORE_MAX_LABELS_TEXT};
    for (size_t i = 0; i < n; i++) {
        /* Worst case: the value doubles when escaped. */
        if (b.len + ls[i].key_len + 2 * ls[i].value_len + 4 > MSTORE_MAX_LABELS_TEXT)
            return -1;
        if (i)
            b.p[b.len++] = ',';
        memcpy(b.p + b.len, ls[i].key, ls[i].key_len);
        b.len += ls[i].key_len;
        b.p[b.len++] = '=';
        b.p[b.len++] = '"';
        mbuf_add_label_value(&b, ls[i].value, ls[i].value_len);
        b.p[b.len++] = '"';
    }
    return (int64_t)b.len;
}

/* Rebuilds a table of index+1 slots at twice the size; hash_of(st, i) is
 * entry i's hash. */
static void table_grow(struct mstore *st, uint32_t **slots, size_t *mask, uint32_t n,
                       uint32_t (*hash_of)(const struct mstore *, uint32_t))
{
    size_t nslots = (*mask + 1) * 2;
    free(*slots);
    *slots = xcalloc(nslots, sizeof **slots);
    *mask = nslots - 1;
    for (uint32_t i = 0; i < n; i++) {
        size_t j = hash_of(st, i) & *mask;
        while ((*slots)[j])
            j = (j + 1) & *mask;
        (*slots)[j] = i + 1;
    }
}

static uint32_t series_hash_of(const struct mstore *st, uint32_t i)
{
    return series_at(st, i)->hash;
}

static uint32_t labelset_hash_of(const struct mstore *st, uint32_t i)
{
    return labelset_at(st, i)->hash;
}

static size_t n_buckets(const struct mstore *st, const struct mstore_family *f)
{
    return f->kind == STATSD_TIMER ? st->conf->n_timer_buckets : st->conf->n_hist_buckets;
}

static const double *buckets(const struct mstore *st, const struct mstore_family *f)
{
    return f->kind == STATSD_TIMER ? st->conf->timer_buckets : st->conf->hist_buckets;
}

/* The label set's index, or UINT32_MAX when the text is not interned yet;
 * *slot is where it would go. */
static uint32_t labelset_find(const struct mstore *st, const char *text, size_t len, uint32_t h, size_t *slot)
{
    size_t j = h & st->ls_mask;
    for (; st->ls_slots[j]; j = (j + 1) & st->ls_mask) {
        const struct mlabelset *ls = labelset_at(st, st->ls_slots[j] - 1);
        if (ls->hash == h && ls->len == len && (len == 0 || memcmp(ls->text, text, len) == 0))
            return st->ls_slots[j] - 1;
    }
    *slot = j;
    return UINT32_MAX;
}

static uint32_t labelset_add(struct mstore *st, const char *text, size_t len, uint32_t h, size_t slot)
{
    struct mlabelset *ls = arena_alloc(st, sizeof *ls + len, 4);
    ls->hash = h;
    ls->len = (uint32_t)len;
    memcpy(ls->text, text, len);
    uint32_t i = st->labelsets.n;
    *(struct mlabelset **)mvec_push(&st->labelsets) = ls;
    st->ls_slots[slot] = i + 1;
    if (table_full(st->labelsets.n, st->ls_mask))
        table_grow(st, &st->ls_slots, &st->ls_mask, st->labelsets.n, labelset_hash_of);
    return i;
}

static uint32_t series_hash(uint32_t fam, uint32_t labels)
{
    return (uint32_t)metrics_hash_mix(((uint64_t)fam << 32 | labels) + 0x9e3779b97f4a7c15ull);
}

/* Takes one series from the limit; false when it is reached. */
static bool limit_take(struct mstore *st, bool check_limit)
{
    if (!st->limit)
        return true;
    if (check_limit && st->limit->max) {
        if (atomic_fetch_add(&st->limit->used, 1) >= st->limit->max) {
            atomic_fetch_sub(&st->limit->used, 1);
            return false;
        }
        return true;
    }
    atomic_fetch_add(&st->limit->used, 1);
    return true;
}

static void series_value_init(struct mstore *st, struct mseries *s)
{
    const struct mstore_family *f = family_at(st, s->fam);
    if (f->type == PROM_HISTOGRAM) {
        size_t bytes = sizeof *s->u.hist + n_buckets(st, f) * sizeof(double);
        s->u.hist = arena_alloc(st, bytes, 8);
        memset(s->u.hist, 0, bytes);
    } else if (f->kind == STATSD_SET) {
        s->u.set = arena_alloc(st, sizeof *s->u.set, 8);
        *s->u.set = (struct mset_windows){.window = WINDOW_UNSET};
    } else {
        s->u.value = 0;
    }
}

/* Finds the series, or creates it (when the limit, if checked, allows).
 * Returns NULL when refused. A new label text is interned only for a
 * series that is created, so refused lines leave nothing behind. */
static struct mseries *series_get(struct mstore *st, uint32_t fam, const char *labels, size_t len, bool check_limit)
{
    uint32_t lh = (uint32_t)metrics_hash(labels, len, 1);
    size_t ls_slot = 0;
    uint32_t lid = labelset_find(st, labels, len, lh, &ls_slot);
    uint32_t h = 0;
    size_t j = 0;
    if (lid != UINT32_MAX) {
        h = series_hash(fam, lid);
        for (j = h & st->mask; st->slots[j]; j = (j + 1) & st->mask) {
            struct mseries *s = series_at(st, st->slots[j] - 1);
            if (s->hash == h && s->fam == fam && s->labels == lid)
                return s;
        }
    }
    if (!limit_take(st, check_limit))
        return NULL;
    if (lid == UINT32_MAX) {
        lid = labelset_add(st, labels, len, lh, ls_slot);
        h = series_hash(fam, lid);
        for (j = h & st->mask; st->slots[j]; j = (j + 1) & st->mask)
            ;
    }
    uint32_t i = st->series.n;
    struct mseries *s = mvec_push(&st->series);
    *s = (struct mseries){.fam = fam, .labels = lid, .hash = h, .stamp = 0};
    series_value_init(st, s);
    st->slots[j] = i + 1;
    if (table_full(st->series.n, st->mask))
        table_grow(st, &st->slots, &st->mask, st->series.n, series_hash_of);
    return s;
}

static void hist_observe(const struct mstore *st, const struct mstore_family *f, struct mhist *h, double v, double w)
{
    const double *b = buckets(st, f);
    size_t nb = n_buckets(st, f);
    /* Binary search for the first bucket with v <= bound. */
    size_t lo = 0, hi = nb;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < nb)
        h->counts[lo] += w;
    h->count += w;
    h->sum += v * w;
}

/* Adds a member hash; false when the set is full. */
static bool set_add(struct mset *s, uint64_t h, uint32_t max)
{
    h |= 1; /* 0 marks an empty slot */
    if (s->cap) {
        for (size_t j = h & (s->cap - 1); s->slots[j]; j = (j + 1) & (s->cap - 1))
            if (s->slots[j] == h)
                return true;
    }
    if (s->n >= max)
        return false;
    if ((s->n + 1) * 2 > s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 8;
        uint64_t *slots = xcalloc(cap, sizeof *slots);
        for (uint32_t i = 0; i < s->cap; i++) {
            if (!s->slots[i])
                continue;
            size_t j = s->slots[i] & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t j = h & (s->cap - 1);
    while (s->slots[j])
        j = (j + 1) & (s->cap - 1);
    s->slots[j] = h;
    s->n++;
    return true;
}

static void set_clear(struct mset *s)
{
    if (s->n)
        memset(s->slots, 0, s->cap * sizeof *s->slots);
    s->n = 0;
}

static uint32_t window_of(const struct mstore_conf *c, uint32_t now_ds)
{
    return c->set_window_ds ? now_ds / c->set_window_ds : 0;
}

/* Moves the set to window w before a member is added: the current window
 * becomes the previous one if w follows it; after a gap both are empty.
 * The slot arrays are kept (their size is bounded by set_max_members). */
static void set_roll(struct mset_windows *s, uint32_t w)
{
    if (s->window == WINDOW_UNSET)
        s->window = w;
    if (w <= s->window)
        return; /* another loop's clock may lag by a millisecond */
    if (w == s->window + 1) {
        struct mset t = s->prev;
        s->prev = s->cur;
        s->cur = t;
    } else {
        set_clear(&s->prev);
    }
    set_clear(&s->cur);
    s->window = w;
    s->has_prev = true;
}

static const struct mset no_members = {0, 0, NULL};

/* The members exposed at window w: the last complete window's. */
static const struct mset *set_exposed(const struct mset_windows *s, uint32_t w)
{
    if (s->window == WINDOW_UNSET || w <= s->window)
        return s->has_prev ? &s->prev : &s->cur;
    return w == s->window + 1 ? &s->cur : &no_members;
}

static void set_unite(struct mset *d, const struct mset *s)
{
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            set_add(d, s->slots[i], UINT32_MAX);
}

enum mstore_result mstore_apply(struct mstore *st, const struct statsd_line *line, const struct prom_label *extra,
                                size_t n_extra, uint32_t now_ds)
{
    char name[MSTORE_MAX_NAME + 8];
    size_t nn = mstore_sanitize_name(line->name.p, line->name.n, name);
    if (nn == 0) {
        st->refused[MSTORE_BAD_NAME]++;
        return MSTORE_BAD_NAME;
    }
    if (line->type == STATSD_COUNTER && !(nn > 6 && memcmp(name + nn - 6, "_total", 6) == 0)) {
        memcpy(name + nn, "_total", 7);
        nn += 6;
    }
    int64_t fam = store_family_get(st, name, nn, line->type);
    if (fam == -2) {
        st->refused[MSTORE_LIMIT]++;
        return MSTORE_LIMIT;
    }
    if (fam < 0) {
        st->refused[MSTORE_TYPE_CONFLICT]++;
        return MSTORE_TYPE_CONFLICT;
    }
    const struct mstore_family *f = family_at(st, (uint32_t)fam);
    char labels[MSTORE_MAX_LABELS_TEXT];
    int64_t len = store_render_labels(line, extra, n_extra, f->type == PROM_HISTOGRAM, labels);
    if (len < 0) {
        st->refused[MSTORE_BAD_LABEL]++;
        return MSTORE_BAD_LABEL;
    }
    struct mseries *s = series_get(st, (uint32_t)fam, labels, (size_t)len, true);
    if (!s) {
        st->refused[MSTORE_LIMIT]++;
        return MSTORE_LIMIT;
    }
    s->stamp = now_ds;
    double w = 1.0 / line->rate;
    switch (line->type) {
    case STATSD_COUNTER:
        for (uint32_t i = 0; i < line->n_values; i++)
            s->u.value += line->values[i] * w;
        break;
    case STATSD_GAUGE:
        for (uint32_t i = 0; i < line->n_values; i++)
            s->u.value = line->delta ? s->u.value + line->values[i] : line->values[i];
        break;
    case STATSD_TIMER:
        for (uint32_t i = 0; i < line->n_values; i++)
            hist_observe(st, f, s->u.hist, line->values[i] / 1000.0, w);
        break;
    case STATSD_HISTOGRAM:
    case STATSD_DISTRIBUTION:
        for (uint32_t i = 0; i < line->n_values; i++)
            hist_observe(st, f, s->u.hist, line->values[i], w);
        break;
    case STATSD_SET:
        set_roll(s->u.set, window_of(st->conf, now_ds));
        if (!set_add(&s->u.set->cur, metrics_hash(line->member.p, line->member.n, 7), st->conf->set_max_members))
            st->set_overflow++;
        break;
    }
    return MSTORE_OK;
}

/* Folds series s of store src into dst: with expose_ds, the merge of
 * workers' stores for an exposition at that time (a set contributes the
 * members it exposes); without (NULL), a copy keeping sets' windows (a
 * rebuild on reconfiguration, where every series is new to dst). */
static void merge_series(struct mstore *dst, const struct mstore *src, const struct mseries *s,
                         const uint32_t *expose_ds)
{
    const struct mstore_family *sf = family_at(src, s->fam);
    int64_t fam = store_family_get(dst, sf->name, sf->name_len, (enum statsd_type)sf->kind);
    if (fam < 0)
        return; /* impossible: the same name has one kind in every store of one config */
    const struct mlabelset *ls = labelset_at(src, s->labels);
    struct mseries *d = series_get(dst, (uint32_t)fam, ls->text, ls->len, false);
    bool newer = s->stamp >= d->stamp;
    if (sf->type == PROM_HISTOGRAM) {
        size_t nb = n_buckets(src, sf);
        for (size_t i = 0; i < nb; i++)
            d->u.hist->counts[i] += s->u.hist->counts[i];
        d->u.hist->count += s->u.hist->count;
        d->u.hist->sum += s->u.hist->sum;
    } else if (sf->kind == STATSD_SET && expose_ds) {
        set_unite(&d->u.set->cur, set_exposed(s->u.set, window_of(src->conf, *expose_ds)));
    } else if (sf->kind == STATSD_SET) {
        set_unite(&d->u.set->cur, &s->u.set->cur);
        set_unite(&d->u.set->prev, &s->u.set->prev);
        d->u.set->window = s->u.set->window;
        d->u.set->has_prev = s->u.set->has_prev;
    } else if (sf->type == PROM_COUNTER) {
        d->u.value += s->u.value;
    } else if (newer) {
        d->u.value = s->u.value;
    }
    if (newer)
        d->stamp = s->stamp;
}

/* Whether series of family f keep their meaning under conf c: only
 * histograms depend on the configuration (their buckets). */
static bool family_fits(const struct mstore *st, const struct mstore_family *f, const struct mstore_conf *c)
{
    if (f->type != PROM_HISTOGRAM)
        return true;
    if (f->kind == STATSD_TIMER)
        return same_buckets(st->conf->timer_buckets, st->conf->n_timer_buckets, c->timer_buckets,
                            c->n_timer_buckets);
    return same_buckets(st->conf->hist_buckets, st->conf->n_hist_buckets, c->hist_buckets, c->n_hist_buckets);
}

/* A new set_window length: window indexes of the old length mean nothing
 * under the new one. Each set keeps its current members and starts a
 * first window again at its next member. */
static void sets_restart_windows(struct mstore *st)
{
    for (uint32_t i = 0; i < st->series.n; i++) {
        struct mseries *s = series_at(st, i);
        if (family_at(st, s->fam)->kind != STATSD_SET)
            continue;
        set_clear(&s->u.set->prev);
        s->u.set->has_prev = false;
        s->u.set->window = WINDOW_UNSET;
    }
}

void mstore_reconfigure(struct mstore *st, const struct mstore_conf *conf)
{
    struct mstore_conf *next = conf_copy(conf);
    pthread_mutex_lock(&st->lock);
    if (st->conf->set_window_ds != conf->set_window_ds)
        sets_restart_windows(st);
    bool timer_same = same_buckets(st->conf->timer_buckets, st->conf->n_timer_buckets, conf->timer_buckets,
                                   conf->n_timer_buckets);
    bool hist_same =
        same_buckets(st->conf->hist_buckets, st->conf->n_hist_buckets, conf->hist_buckets, conf->n_hist_buckets);
    if (timer_same && hist_same) {
        const struct mstore_conf *prev = st->conf;
        st->conf = next;
        pthread_mutex_unlock(&st->lock);
        conf_free(prev);
        return;
    }
    /* Buckets changed: rebuild, keeping every series but the histograms of
     * the changed kind (their counts do not map onto the new buckets). The
     * limit is settled once at the end, so the rebuild cannot be refused. */
    struct mstore old = *st;
    struct mstore_limit *limit = st->limit;
    old.limit = NULL;
    st->limit = NULL;
    st->conf = next;
    store_data_init(st);
    for (uint32_t i = 0; i < old.series.n; i++) {
        const struct mseries *s = series_at(&old, i);
        if (family_fits(&old, family_at(&old, s->fam), next))
            merge_series(st, &old, s, NULL);
    }
    if (limit) {
        atomic_fetch_sub(&limit->used, old.series.n);
        atomic_fetch_add(&limit->used, st->series.n);
    }
    st->limit = limit;
    pthread_mutex_unlock(&st->lock);
    store_data_free(&old);
    conf_free(old.conf);
}

static const char *help_of(const struct mstore_family *f)
{
    switch ((enum statsd_type)f->kind) {
    case STATSD_COUNTER: return "statsd counter";
    case STATSD_GAUGE: return "statsd gauge";
    case STATSD_TIMER: return "statsd timer, in seconds";
    case STATSD_SET: return "statsd set: distinct members per statsd.set_window";
    default: return "statsd histogram";
    }
}

/* The snapshot's family for store family fi, added at its first series
 * (a family whose series were all refused by the cap stays out). */
static uint32_t snap_family(const struct mstore *st, uint32_t fi, uint32_t *map, struct msnap_builder *b)
{
    if (map[fi] == UINT32_MAX) {
        const struct mstore_family *f = family_at(st, fi);
        const char *help = help_of(f);
        map[fi] = msnap_builder_new_family(b, (struct prom_str){f->name, family_expo_len(f)}, f->expo_hash,
                                           (struct prom_str){help, strlen(help)}, (enum prom_type)f->type);
    }
    return map[fi];
}

static void emit_series(const struct mstore *st, const struct mseries *s, uint32_t now_ds, uint32_t *map,
                        struct msnap_builder *b)
{
    const struct mstore_family *f = family_at(st, s->fam);
    const struct mlabelset *ls = labelset_at(st, s->labels);
    uint32_t fam = snap_family(st, s->fam, map, b);
    if (f->kind == STATSD_SET) {
        const struct mset *m = set_exposed(s->u.set, window_of(st->conf, now_ds));
        msnap_builder_new_series(b, fam, MSFX_NONE, ls->text, ls->len, m->n);
        return;
    }
    if (f->type != PROM_HISTOGRAM) {
        enum msnap_suffix sfx = f->type == PROM_COUNTER && family_expo_len(f) < f->name_len ? MSFX_TOTAL : MSFX_NONE;
        msnap_builder_new_series(b, fam, sfx, ls->text, ls->len, s->u.value);
        return;
    }
    const double *bounds = buckets(st, f);
    size_t nb = n_buckets(st, f);
    char text[MSTORE_MAX_LABELS_TEXT + 64];
    memcpy(text, ls->text, ls->len);
    size_t base = ls->len;
    if (base)
        text[base++] = ',';
    memcpy(text + base, "le=\"", 4);
    base += 4;
    double cum = 0;
    for (size_t i = 0; i <= nb; i++) {
        size_t len = base;
        if (i < nb) {
            cum += s->u.hist->counts[i];
            len += metrics_format_double(text + len, bounds[i]);
        } else {
            cum = s->u.hist->count;
            memcpy(text + len, "+Inf", 4);
            len += 4;
        }
        text[len++] = '"';
        msnap_builder_new_series(b, fam, MSFX_BUCKET, text, len, cum);
    }
    msnap_builder_new_series(b, fam, MSFX_SUM, ls->text, ls->len, s->u.hist->sum);
    msnap_builder_new_series(b, fam, MSFX_COUNT, ls->text, ls->len, s->u.hist->count);
}

/* Adds every series of st to the builder, families in order of creation
 * of their first series. */
static void emit_store(const struct mstore *st, uint32_t now_ds, struct msnap_builder *b)
{
    uint32_t *map = xmalloc((st->fams.n ? st->fams.n : 1) * sizeof *map);
    memset(map, 0xff, st->fams.n * sizeof *map);
    for (uint32_t i = 0; i < st->series.n; i++)
        emit_series(st, series_at(st, i), now_ds, map, b);
    free(map);
}

/* Presizes the builder for everything emit_series will add. */
static void reserve_for(const struct mstore *st, struct msnap_builder *b)
{
    size_t n = 0, text = 0;
    for (uint32_t i = 0; i < st->series.n; i++) {
        const struct mseries *s = series_at(st, i);
        const struct mstore_family *f = family_at(st, s->fam);
        size_t k = f->type == PROM_HISTOGRAM ? n_buckets(st, f) + 3 : 1;
        n += k;
        text += k * (labelset_at(st, s->labels)->len + (k > 1 ? 40 : 0));
    }
    /* Each family's name goes to the text too (helps are shared). */
    for (uint32_t f = 0; f < st->fams.n; f++)
        text += family_at(st, f)->name_len;
    text += 200;
    msnap_builder_reserve(b, n, text);
}

void mstore_snapshot(struct mstore *const *stores, size_t n, uint32_t now_ds, struct msnap_builder *b)
{
    if (n == 1) {
        pthread_mutex_lock(&stores[0]->lock);
        reserve_for(stores[0], b);
        emit_store(stores[0], now_ds, b);
        pthread_mutex_unlock(&stores[0]->lock);
        return;
    }
    struct mstore merged;
    pthread_mutex_lock(&stores[0]->lock);
    mstore_init(&merged, stores[0]->conf, NULL);
    pthread_mutex_unlock(&stores[0]->lock);
    for (size_t k = 0; k < n; k++) {
        pthread_mutex_lock(&stores[k]->lock);
        for (uint32_t i = 0; i < stores[k]->series.n; i++) {
            const struct mseries *s = series_at(stores[k], i);
            /* During a reload's start a store may still have the previous
             * buckets: its histograms join once it is reconfigured. */
            if (family_fits(stores[k], family_at(stores[k], s->fam), merged.conf))
                merge_series(&merged, stores[k], s, &now_ds);
        }
        pthread_mutex_unlock(&stores[k]->lock);
    }
    reserve_for(&merged, b);
    emit_store(&merged, now_ds, b);
    mstore_fini(&merged);
}

size_t mstore_memory(const struct mstore *st)
{
    size_t n = st->arena_bytes + mvec_memory(&st->fams) + mvec_memory(&st->labelsets) + mvec_memory(&st->series) +
               (st->fam_mask + 1 + st->ls_mask + 1 + st->mask + 1) * sizeof(uint32_t);
    for (uint32_t i = 0; i < st->series.n; i++) {
        const struct mseries *s = series_at(st, i);
        if (family_at(st, s->fam)->kind == STATSD_SET)
            n += (s->u.set->cur.cap + s->u.set->prev.cap) * sizeof(uint64_t);
    }
    return n;
}
