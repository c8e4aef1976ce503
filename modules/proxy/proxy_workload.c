/*
 * proxy_workload: the workload a pod belongs to, the caller_workload label
 * of the caller metrics (proxy_caller_metrics.c). Pods come and go with
 * generated names; a workload (Deployment, StatefulSet, DaemonSet) is what
 * a dashboard groups by, and what keeps the label set bounded. The first
 * configured label the pod has wins (app.kubernetes.io/name, app), else the
 * name the controller generated the pod's from.
 */
#include <string.h>

#include "proxy.h"

/* Characters of the random suffixes Kubernetes generates (apimachinery's
 * rand.String: no vowels, no 0, 1, 3, so that no words are spelled). */
static bool random_char(char ch)
{
    return ch && strchr("bcdfghjklmnpqrstvwxz2456789", ch) != NULL;
}

/* A pod-template-hash is the decimal text of a 32-bit hash mapped byte by
 * byte onto that alphabet ('0'..'9' are bytes 48..57, modulo 27), so only
 * these ten characters occur. */
static bool hash_char(char ch)
{
    return ch && strchr("456789bcdf", ch) != NULL;
}

/* The length of name[0, len) without a final "-<s>" whose s has min..max
 * characters, all taken by accepts; len itself when there is none. Something
 * must be left before the '-'. */
static size_t strip_suffix(const char *name, size_t len, size_t min, size_t max, bool (*accepts)(char))
{
    size_t n = 0;
    while (n < len && n <= max && accepts(name[len - 1 - n]))
        n++;
    if (n < min || n > max || n + 1 >= len || name[len - 1 - n] != '-')
        return len;
    return len - n - 1;
}

static bool digit_char(char ch)
{
    return ch >= '0' && ch <= '9';
}

size_t proxy_workload_from_name(const char *name, size_t len)
{
    /* Deployment: <deployment>-<pod-template-hash>-<5 random>; DaemonSet
     * and Job: <name>-<5 random>. The hash is normally 9 or 10 characters
     * (hashes below 10^5 are one in 40000); at least 6 are required so that
     * a DaemonSet named like "cert-mgr" keeps its last word. */
    size_t base = strip_suffix(name, len, 5, 5, random_char);
    if (base != len)
        return strip_suffix(name, base, 6, 10, hash_char);
    /* StatefulSet: <name>-<ordinal>. */
    return strip_suffix(name, len, 1, 10, digit_char);
}

size_t proxy_workload(const struct otr_pod *pod, const struct otr_conf_array *labels, char *out, size_t cap)
{
    const char *w = NULL;
    size_t n = 0;
    for (size_t i = 0; !w && i < labels->n; i++) {
        const char *key = OTR_CONF_AT(*labels, char *, i);
        for (size_t j = 0; j < pod->n_labels; j++)
            if (strcmp(pod->labels[j].key, key) == 0 && pod->labels[j].value[0]) {
                w = pod->labels[j].value;
                n = strlen(w);
                break;
            }
    }
    if (!w) {
        w = pod->name;
        n = proxy_workload_from_name(w, strlen(w));
    }
    if (n >= cap)
        n = cap - 1; /* an inventory's label may be longer than Kubernetes allows */
    memcpy(out, w, n);
    out[n] = 0;
    return n;
}
