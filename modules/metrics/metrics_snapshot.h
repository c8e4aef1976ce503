/*
 * metrics_snapshot: an immutable, compact set of families and series: the
 * result of one scrape of one target, the agent's own registry, or the
 * statsd store at exposition time.
 *
 * A builder takes samples one by one (from the text parser, the relabel
 * hook or the statsd store), interns family names, renders each label set
 * once into a shared text arena, rejects duplicates and type conflicts,
 * and groups series by family. The finished snapshot is about 32 bytes
 * per series plus its label text.
 *
 * Target labels (namespace, pod, container, node) are kept once per
 * snapshot, not per series, and spliced in at exposition. A sample that
 * carries a label of the same name either wins (honor_labels) or has its
 * own renamed to exported_<name>, as Prometheus does.
 *
 * Threads: a builder belongs to one thread. A finished snapshot is
 * read-only and reference counted, so a target can swap in a new one
 * while an exposition still reads the old one.
 */
#ifndef OTR_METRICS_SNAPSHOT_H
#define OTR_METRICS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics_buf.h"
#include "metrics_promtext.h"

#define MSNAP_MAX_TARGET_LABELS 7

/* The sample name's suffix after its family name. */
enum msnap_suffix {
    MSFX_NONE = 0,
    MSFX_TOTAL,
    MSFX_CREATED,
    MSFX_BUCKET,
    MSFX_SUM,
    MSFX_COUNT,
    MSFX_GSUM,
    MSFX_GCOUNT,
    MSFX_INFO,
    MSFX_N,
};
extern const char *const msnap_suffix_text[MSFX_N];

struct msnap_family {
    uint32_t name_off, name_len;
    uint32_t name_hash; /* msnap_name_hash of the name: the exposition groups by it */
    uint32_t help_off, help_len;
    uint32_t first, n_series; /* range in series[] */
    uint8_t type;             /* enum prom_type */
};

struct msnap_series {
    uint32_t fam;
    uint32_t labels_off, labels_len; /* rendered: a="1",b="x" */
    uint8_t suffix;                  /* enum msnap_suffix */
    uint8_t flags;                   /* MSNAP_HAS_TS | bits of target labels to skip */
    double value;
    int64_t ts_ms;
};
#define MSNAP_HAS_TS 0x80u

struct msnap {
    atomic_uint refs;
    char *text; /* names, helps, label sets */
    size_t text_len;
    struct msnap_family *fams;
    uint32_t n_fams;
    struct msnap_series *series;
    uint32_t n_series;
    /* Target labels, each rendered as name="value". */
    char *target_labels[MSNAP_MAX_TARGET_LABELS];
    uint32_t target_label_len[MSNAP_MAX_TARGET_LABELS];
    uint32_t n_target_labels;
    /* Built for reuse (see msnap_builder_init_recycled): buffers keep
     * their capacity, and spare is the builder's unsorted series array. */
    bool recyclable;
    size_t text_cap, fam_cap, series_cap;
    struct msnap_series *spare;
};

/* One sample to add; strings are borrowed. */
struct msample {
    struct prom_str family, help;
    enum prom_type type;
    enum msnap_suffix suffix;
    const struct prom_label *labels;
    size_t n_labels;
    /* Or, instead of labels: a label set already rendered and escaped
     * (a="1",b="2"), valid by construction (the statsd store's). */
    const char *rendered;
    size_t rendered_len;
    double value;
    bool has_ts;
    int64_t ts_ms;
};

/* Why the builder refused a sample. */
enum msnap_reject {
    MSNAP_OK = 0,
    MSNAP_DUPLICATE,     /* same family, suffix and labels as an earlier one */
    MSNAP_TYPE_CONFLICT, /* family seen earlier with another type */
    MSNAP_LIMIT,         /* the builder's series limit is reached */
    MSNAP_BAD_LABEL,     /* invalid label name or value */
};

struct msnap_builder {
    struct msnap *snap;
    struct mbuf text;
    size_t fam_cap, series_cap;
    /* Open-addressing tables of index+1 (0 = empty), power-of-two sized. */
    uint32_t *fam_slots, *series_slots;
    uint32_t *series_hash;
    size_t fam_mask, series_mask;
    bool honor_labels;
    /* Keep buffers at full capacity for a later msnap_builder_init_recycled;
     * sorted_spare: an array of series_cap entries finish may sort into. */
    bool recycle;
    struct msnap_series *sorted_spare;
    uint32_t limit; /* 0: unlimited */
    /* Help texts of msnap_builder_new_family, stored once each (by address). */
    const char *help_p[8];
    uint32_t help_off[8];
    unsigned n_helps;
    struct prom_str target_names[MSNAP_MAX_TARGET_LABELS];
    /* Counts of refused samples, by reason. */
    uint64_t rejected[5];
};

/* Starts a builder. target labels: n pairs (name, value), copied; at most
 * MSNAP_MAX_TARGET_LABELS. limit caps the number of series (0: none). */
void msnap_builder_init(struct msnap_builder *b, const struct prom_label *target, size_t n_target,
                        bool honor_labels, uint32_t limit);
/* Like msnap_builder_init without target labels or limit, for snapshots
 * rebuilt often (the statsd store's, every exposition): takes the buffers
 * of old (a snapshot from a previous such build, no longer referenced;
 * may be NULL), so a rebuild touches no fresh memory. Page faults, not
 * copying, dominate a large exposition's cost otherwise. */
void msnap_builder_init_recycled(struct msnap_builder *b, struct msnap *old);
/* Makes room for n_series more series and text_bytes more label text, so
 * a builder that knows its size never copies while growing. */
void msnap_builder_reserve(struct msnap_builder *b, size_t n_series, size_t text_bytes);
/* Adds a sample (see enum msnap_reject). Counter families named x_total
 * with a bare sample are stored as family x with suffix _total, the
 * OpenMetrics model, so both input formats expose alike. */
enum msnap_reject msnap_builder_add(struct msnap_builder *b, const struct msample *s);
/* The hash families are grouped by (family names, across snapshots). */
uint32_t msnap_name_hash(const char *name, size_t n);
/* The fast path of a source whose families are unique and valid by
 * construction (the statsd store): adds a family without looking it up,
 * so it must not be added again nor mixed with msnap_builder_add on the
 * same builder. hash: msnap_name_hash(name). A help text at the same
 * address as an earlier one is stored once. Returns the family's index. */
uint32_t msnap_builder_new_family(struct msnap_builder *b, struct prom_str name, uint32_t hash, struct prom_str help,
                                  enum prom_type type);
/* Adds a series to such a family: labels already rendered, no checks. */
void msnap_builder_new_series(struct msnap_builder *b, uint32_t fam, enum msnap_suffix sfx, const char *labels,
                              size_t labels_len, double value);
/* Adds a sample as reported by the text parser. */
enum msnap_reject msnap_builder_add_prom(struct msnap_builder *b, const struct prom_sample *s);
/* Finishes: groups series by family and returns the snapshot (refs = 1);
 * the builder is spent. */
struct msnap *msnap_builder_finish(struct msnap_builder *b);
/* Drops a builder without finishing it. */
void msnap_builder_fini(struct msnap_builder *b);

struct msnap *msnap_ref(struct msnap *s);
void msnap_unref(struct msnap *s);

/* Bytes of heap a snapshot holds (for the bench and /status). */
size_t msnap_memory(const struct msnap *s);

#endif
