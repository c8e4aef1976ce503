/*
 * Snapshot builder and snapshot lifetime. See metrics_snapshot.h.
 */
#include "metrics_snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "metrics_hash.h"

const char *const msnap_suffix_text[MSFX_N] = {
    [MSFX_NONE] = "",      [MSFX_TOTAL] = "_total", [MSFX_CREATED] = "_created",
    [MSFX_BUCKET] = "_bucket", [MSFX_SUM] = "_sum",  [MSFX_COUNT] = "_count",
    [MSFX_GSUM] = "_gsum", [MSFX_GCOUNT] = "_gcount", [MSFX_INFO] = "_info",
};

static uint32_t *slots_new(size_t n)
{
    return xcalloc(n, sizeof(uint32_t));
}

void msnap_builder_init(struct msnap_builder *b, const struct prom_label *target, size_t n_target,
                        bool honor_labels, uint32_t limit)
{
    memset(b, 0, sizeof *b);
    b->snap = xcalloc(1, sizeof *b->snap);
    atomic_init(&b->snap->refs, 1);
    mbuf_init(&b->text);
    b->honor_labels = honor_labels;
    b->limit = limit;
    b->fam_cap = 16;
    b->snap->fams = xmalloc(b->fam_cap * sizeof *b->snap->fams);
    b->fam_mask = 31;
    b->fam_slots = slots_new(b->fam_mask + 1);
    b->series_cap = 64;
    b->snap->series = xmalloc(b->series_cap * sizeof *b->snap->series);
    b->series_hash = xmalloc(b->series_cap * sizeof *b->series_hash);
    b->series_mask = 127;
    b->series_slots = slots_new(b->series_mask + 1);
    if (n_target > MSNAP_MAX_TARGET_LABELS)
        n_target = MSNAP_MAX_TARGET_LABELS;
    for (size_t i = 0; i < n_target; i++) {
        struct mbuf t;
        mbuf_init(&t);
        mbuf_add(&t, target[i].name.p, target[i].name.n);
        mbuf_add(&t, "=\"", 2);
        mbuf_add_label_value(&t, target[i].value.p, target[i].value.n);
        mbuf_addc(&t, '"');
        b->snap->target_labels[i] = t.p;
        b->snap->target_label_len[i] = (uint32_t)t.len;
        /* The name is the first name.n bytes of the rendered label. */
        b->target_names[i] = (struct prom_str){t.p, target[i].name.n};
    }
    b->snap->n_target_labels = (uint32_t)n_target;
}

void msnap_builder_fini(struct msnap_builder *b)
{
    if (b->snap)
        msnap_unref(b->snap);
    b->snap = NULL;
    mbuf_fini(&b->text);
    free(b->fam_slots);
    free(b->series_slots);
    free(b->series_hash);
    free(b->sorted_spare);
    b->sorted_spare = NULL;
    b->fam_slots = b->series_slots = b->series_hash = NULL;
}

void msnap_builder_init_recycled(struct msnap_builder *b, struct msnap *old)
{
    msnap_builder_init(b, NULL, 0, false, 0);
    b->recycle = true;
    if (!old || !old->recyclable)
        return;
    struct msnap *snap = b->snap;
    free(snap->fams);
    free(snap->series);
    snap->fams = old->fams;
    b->fam_cap = old->fam_cap;
    snap->series = old->spare;
    b->sorted_spare = old->series;
    b->series_cap = old->series_cap;
    b->series_hash = xrealloc(b->series_hash, b->series_cap * sizeof *b->series_hash);
    mbuf_fini(&b->text);
    b->text = (struct mbuf){.p = old->text, .len = 0, .cap = old->text_cap};
    free(old);
}

void msnap_builder_reserve(struct msnap_builder *b, size_t n_series, size_t text_bytes)
{
    struct msnap *snap = b->snap;
    if (snap->n_series + n_series > b->series_cap) {
        b->series_cap = snap->n_series + n_series;
        snap->series = xrealloc(snap->series, b->series_cap * sizeof *snap->series);
        b->series_hash = xrealloc(b->series_hash, b->series_cap * sizeof *b->series_hash);
    }
    mbuf_reserve(&b->text, text_bytes);
}

static bool text_eq(const struct msnap_builder *b, uint32_t off, uint32_t len, const char *p, size_t n)
{
    return len == n && memcmp(b->text.p + off, p, n) == 0;
}

static uint32_t text_add(struct msnap_builder *b, const char *p, size_t n)
{
    uint32_t off = (uint32_t)b->text.len;
    mbuf_add(&b->text, p, n);
    return off;
}

uint32_t msnap_name_hash(const char *name, size_t n)
{
    return (uint32_t)metrics_hash(name, n, 0);
}

static void fam_grow(struct msnap_builder *b)
{
    struct msnap *s = b->snap;
    size_t nslots = (b->fam_mask + 1) * 2;
    free(b->fam_slots);
    b->fam_slots = slots_new(nslots);
    b->fam_mask = nslots - 1;
    for (uint32_t i = 0; i < s->n_fams; i++) {
        const struct msnap_family *f = &s->fams[i];
        size_t j = f->name_hash & b->fam_mask;
        while (b->fam_slots[j])
            j = (j + 1) & b->fam_mask;
        b->fam_slots[j] = i + 1;
    }
}

/* Finds or adds the family; returns its index or -1 on a type conflict. */
static int64_t family_get(struct msnap_builder *b, const struct msample *s, struct prom_str name)
{
    struct msnap *snap = b->snap;
    uint32_t hash = msnap_name_hash(name.p, name.n);
    size_t j = hash & b->fam_mask;
    for (; b->fam_slots[j]; j = (j + 1) & b->fam_mask) {
        uint32_t i = b->fam_slots[j] - 1;
        struct msnap_family *f = &snap->fams[i];
        if (f->name_hash != hash || !text_eq(b, f->name_off, f->name_len, name.p, name.n))
            continue;
        if (f->type != s->type)
            return -1;
        if (f->help_len == 0 && s->help.n) {
            f->help_off = text_add(b, s->help.p, s->help.n);
            f->help_len = (uint32_t)s->help.n;
        }
        return i;
    }
    if (snap->n_fams == b->fam_cap) {
        b->fam_cap *= 2;
        snap->fams = xrealloc(snap->fams, b->fam_cap * sizeof *snap->fams);
    }
    uint32_t i = snap->n_fams++;
    struct msnap_family *f = &snap->fams[i];
    f->name_off = text_add(b, name.p, name.n);
    f->name_len = (uint32_t)name.n;
    f->name_hash = hash;
    f->help_off = s->help.n ? text_add(b, s->help.p, s->help.n) : 0;
    f->help_len = (uint32_t)s->help.n;
    f->type = (uint8_t)s->type;
    f->first = f->n_series = 0;
    b->fam_slots[j] = i + 1;
    if (snap->n_fams * 2 > b->fam_mask + 1)
        fam_grow(b);
    return i;
}

/* Renders the sample's labels after the text arena's end (not yet
 * committed) and returns their length, or -1 on an invalid label. Empty
 * values are dropped: Prometheus treats them as absent. */
static int64_t render_labels(struct msnap_builder *b, const struct msample *s, uint8_t *mask)
{
    size_t start = b->text.len;
    bool first = true;
    for (size_t i = 0; i < s->n_labels; i++) {
        const struct prom_label *l = &s->labels[i];
        if (!prom_valid_label_name(l->name.p, l->name.n) || !prom_valid_utf8(l->value.p, l->value.n)) {
            b->text.len = start;
            return -1;
        }
        if (l->value.n == 0)
            continue;
        bool exported = false;
        for (uint32_t t = 0; t < b->snap->n_target_labels; t++) {
            if (b->target_names[t].n == l->name.n && memcmp(b->target_names[t].p, l->name.p, l->name.n) == 0) {
                if (b->honor_labels)
                    *mask |= (uint8_t)(1u << t);
                else
                    exported = true;
            }
        }
        if (!first)
            mbuf_addc(&b->text, ',');
        first = false;
        if (exported)
            mbuf_add(&b->text, "exported_", 9);
        mbuf_add(&b->text, l->name.p, l->name.n);
        mbuf_add(&b->text, "=\"", 2);
        mbuf_add_label_value(&b->text, l->value.p, l->value.n);
        mbuf_addc(&b->text, '"');
    }
    return (int64_t)(b->text.len - start);
}

static void series_grow(struct msnap_builder *b)
{
    struct msnap *s = b->snap;
    size_t nslots = (b->series_mask + 1) * 2;
    free(b->series_slots);
    b->series_slots = slots_new(nslots);
    b->series_mask = nslots - 1;
    for (uint32_t i = 0; i < s->n_series; i++) {
        size_t j = b->series_hash[i] & b->series_mask;
        while (b->series_slots[j])
            j = (j + 1) & b->series_mask;
        b->series_slots[j] = i + 1;
    }
}

enum msnap_reject msnap_builder_add(struct msnap_builder *b, const struct msample *s)
{
    struct msnap *snap = b->snap;
    struct prom_str fam = s->family;
    enum msnap_suffix sfx = s->suffix;
    if (s->type == PROM_COUNTER && sfx == MSFX_NONE && fam.n > 6 && memcmp(fam.p + fam.n - 6, "_total", 6) == 0) {
        fam.n -= 6;
        sfx = MSFX_TOTAL;
    }
    if (!prom_valid_metric_name(fam.p, fam.n) || !prom_valid_utf8(s->help.p, s->help.n)) {
        b->rejected[MSNAP_BAD_LABEL]++;
        return MSNAP_BAD_LABEL;
    }
    if (b->limit && snap->n_series >= b->limit) {
        b->rejected[MSNAP_LIMIT]++;
        return MSNAP_LIMIT;
    }
    int64_t fi = family_get(b, s, fam);
    if (fi < 0) {
        b->rejected[MSNAP_TYPE_CONFLICT]++;
        return MSNAP_TYPE_CONFLICT;
    }
    uint8_t mask = 0;
    size_t off = b->text.len;
    int64_t len = (int64_t)s->rendered_len;
    if (s->rendered)
        mbuf_add(&b->text, s->rendered, s->rendered_len);
    else
        len = render_labels(b, s, &mask);
    if (len < 0) {
        b->rejected[MSNAP_BAD_LABEL]++;
        return MSNAP_BAD_LABEL;
    }
    uint64_t key[2] = {(uint64_t)fi, sfx};
    uint32_t h = (uint32_t)metrics_hash(b->text.p + off, (size_t)len, metrics_hash(key, sizeof key, 1));
    size_t j = h & b->series_mask;
    for (; b->series_slots[j]; j = (j + 1) & b->series_mask) {
        uint32_t i = b->series_slots[j] - 1;
        const struct msnap_series *o = &snap->series[i];
        if (b->series_hash[i] == h && o->fam == fi && o->suffix == sfx &&
            text_eq(b, o->labels_off, o->labels_len, b->text.p + off, (size_t)len)) {
            b->text.len = off;
            b->rejected[MSNAP_DUPLICATE]++;
            return MSNAP_DUPLICATE;
        }
    }
    if (snap->n_series == b->series_cap) {
        b->series_cap = b->series_cap ? b->series_cap * 2 : 64;
        snap->series = xrealloc(snap->series, b->series_cap * sizeof *snap->series);
        b->series_hash = xrealloc(b->series_hash, b->series_cap * sizeof *b->series_hash);
    }
    uint32_t i = snap->n_series++;
    snap->series[i] = (struct msnap_series){
        .fam = (uint32_t)fi,
        .labels_off = (uint32_t)off,
        .labels_len = (uint32_t)len,
        .suffix = (uint8_t)sfx,
        .flags = (uint8_t)(mask | (s->has_ts ? MSNAP_HAS_TS : 0)),
        .value = s->value,
        .ts_ms = s->ts_ms,
    };
    snap->fams[fi].n_series++;
    b->series_hash[i] = h;
    b->series_slots[j] = i + 1;
    if (snap->n_series * 2 > b->series_mask + 1)
        series_grow(b);
    return MSNAP_OK;
}

uint32_t msnap_builder_new_family(struct msnap_builder *b, struct prom_str name, uint32_t hash, struct prom_str help,
                                  enum prom_type type)
{
    struct msnap *snap = b->snap;
    if (snap->n_fams == b->fam_cap) {
        b->fam_cap *= 2;
        snap->fams = xrealloc(snap->fams, b->fam_cap * sizeof *snap->fams);
    }
    uint32_t help_off = 0;
    unsigned h = 0;
    while (h < b->n_helps && b->help_p[h] != help.p)
        h++;
    if (h < b->n_helps) {
        help_off = b->help_off[h];
    } else if (help.n) {
        help_off = text_add(b, help.p, help.n);
        if (b->n_helps < sizeof b->help_p / sizeof b->help_p[0]) {
            b->help_p[b->n_helps] = help.p;
            b->help_off[b->n_helps++] = help_off;
        }
    }
    uint32_t i = snap->n_fams++;
    snap->fams[i] = (struct msnap_family){
        .name_off = text_add(b, name.p, name.n),
        .name_len = (uint32_t)name.n,
        .name_hash = hash,
        .help_off = help_off,
        .help_len = (uint32_t)help.n,
        .type = (uint8_t)type,
    };
    return i;
}

void msnap_builder_new_series(struct msnap_builder *b, uint32_t fam, enum msnap_suffix sfx, const char *labels,
                              size_t labels_len, double value)
{
    struct msnap *snap = b->snap;
    if (snap->n_series == b->series_cap) {
        b->series_cap = b->series_cap ? b->series_cap * 2 : 64;
        snap->series = xrealloc(snap->series, b->series_cap * sizeof *snap->series);
        b->series_hash = xrealloc(b->series_hash, b->series_cap * sizeof *b->series_hash);
    }
    snap->series[snap->n_series++] = (struct msnap_series){
        .fam = fam,
        .labels_off = text_add(b, labels, labels_len),
        .labels_len = (uint32_t)labels_len,
        .suffix = (uint8_t)sfx,
        .value = value,
    };
    snap->fams[fam].n_series++;
}

static enum msnap_suffix suffix_of(const struct prom_sample *s)
{
    size_t extra = s->name.n - s->family.n;
    for (int i = 1; i < MSFX_N; i++)
        if (strlen(msnap_suffix_text[i]) == extra && memcmp(s->name.p + s->family.n, msnap_suffix_text[i], extra) == 0)
            return (enum msnap_suffix)i;
    return MSFX_NONE;
}

enum msnap_reject msnap_builder_add_prom(struct msnap_builder *b, const struct prom_sample *s)
{
    struct msample m = {
        .family = s->family,
        .help = s->help,
        .type = s->type,
        .suffix = suffix_of(s),
        .labels = s->labels,
        .n_labels = s->n_labels,
        .value = s->value,
        .has_ts = s->has_ts,
        .ts_ms = s->ts_ms,
    };
    return msnap_builder_add(b, &m);
}

struct msnap *msnap_builder_finish(struct msnap_builder *b)
{
    struct msnap *snap = b->snap;
    /* Counting sort by family, stable, so each family's series are one
     * range in family order and keep their order of arrival. */
    uint32_t pos = 0;
    for (uint32_t f = 0; f < snap->n_fams; f++) {
        snap->fams[f].first = pos;
        pos += snap->fams[f].n_series;
    }
    struct msnap_series *sorted;
    if (b->recycle)
        sorted = xrealloc(b->sorted_spare, (b->series_cap ? b->series_cap : 1) * sizeof *sorted);
    else
        sorted = xmalloc((snap->n_series ? snap->n_series : 1) * sizeof *sorted);
    b->sorted_spare = NULL;
    uint32_t *next = xmalloc((snap->n_fams ? snap->n_fams : 1) * sizeof *next);
    for (uint32_t f = 0; f < snap->n_fams; f++)
        next[f] = snap->fams[f].first;
    for (uint32_t i = 0; i < snap->n_series; i++)
        sorted[next[snap->series[i].fam]++] = snap->series[i];
    free(next);
    if (b->recycle) {
        snap->spare = snap->series;
        snap->series = sorted;
        snap->recyclable = true;
        snap->series_cap = b->series_cap;
        snap->fam_cap = b->fam_cap;
        snap->text = b->text.p;
        snap->text_cap = b->text.cap;
    } else {
        free(snap->series);
        snap->series = sorted;
        snap->fams = xrealloc(snap->fams, (snap->n_fams ? snap->n_fams : 1) * sizeof *snap->fams);
        snap->text = b->text.len ? xrealloc(b->text.p, b->text.len) : (free(b->text.p), NULL);
    }
    snap->text_len = b->text.len;
    mbuf_init(&b->text);
    b->snap = NULL;
    msnap_builder_fini(b);
    return snap;
}

struct msnap *msnap_ref(struct msnap *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void msnap_unref(struct msnap *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < s->n_target_labels; i++)
        free(s->target_labels[i]);
    free(s->text);
    free(s->fams);
    free(s->series);
    free(s->spare);
    free(s);
}

size_t msnap_memory(const struct msnap *s)
{
    size_t n = sizeof *s + s->text_len + s->n_fams * sizeof *s->fams + s->n_series * sizeof *s->series;
    for (uint32_t i = 0; i < s->n_target_labels; i++)
        n += s->target_label_len[i];
    return n;
}
