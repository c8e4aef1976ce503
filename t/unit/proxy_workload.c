// pkgs: libnghttp2
/*
 * The caller_workload label (proxy_workload.c): a pod's configured label
 * when present, else its name less what its controller generated:
 * Deployment "-<pod-template-hash>-<5 random>", DaemonSet / Job
 * "-<5 random>", StatefulSet "-<ordinal>"; any other name as it is.
 */
#include "tap.h"

#include "../../modules/proxy/proxy_workload.c"

static const char *from_name(const char *name)
{
    static char out[256];
    size_t n = proxy_workload_from_name(name, strlen(name));
    memcpy(out, name, n);
    out[n] = 0;
    return out;
}

static const char *of_pod(const struct otr_pod *pod, char *const *keys, size_t n_keys)
{
    static char out[256];
    struct otr_conf_array labels = { (void *)keys, n_keys };
    size_t n = proxy_workload(pod, &labels, out, sizeof out);
    ok(n == strlen(out), "length returned for %s", out);
    return out;
}

int main(void)
{
    /* Generated names. */
    is_str(from_name("shop-7d9f8c6b5-x2k4q"), "shop", "Deployment: hash and random suffix dropped");
    is_str(from_name("shop-api-6b54cc8d9f-q7w2z"), "shop-api", "Deployment with a dash in its name");
    is_str(from_name("fluentd-x2k4q"), "fluentd", "DaemonSet: the random suffix dropped");
    is_str(from_name("kube-proxy-x2k4q"), "kube-proxy", "... a last word with a vowel is no hash");
    is_str(from_name("cert-bdf-x2k4q"), "cert-bdf", "... nor a short one of hash characters");
    is_str(from_name("db-0"), "db", "StatefulSet: the ordinal dropped");
    is_str(from_name("kafka-broker-12"), "kafka-broker", "StatefulSet, ordinal 12");
    /* Names that keep everything. */
    is_str(from_name("web"), "web", "a plain name stays");
    is_str(from_name("x2k4q"), "x2k4q", "a name that is only a suffix stays");
    is_str(from_name("web-aeiou"), "web-aeiou", "5 characters with vowels are no random suffix");
    is_str(from_name("web-x2k4"), "web-x2k4", "4 characters are no random suffix");
    is_str(from_name("web-x2k4qq"), "web-x2k4qq", "6 characters are no random suffix");
    is_str(from_name("web-"), "web-", "a trailing dash stays");
    is_str(from_name("-0"), "-0", "nothing before the ordinal: stays");
    is_str(from_name("backup-28391234-x2k4q"), "backup-28391234",
           "a CronJob's job number is no pod-template-hash (1 and 3 never occur in one)");
    is_str(from_name("app-bbbbbbbbbbb-x2k4q"), "app-bbbbbbbbbbb", "11 hash characters are too many for a hash");
    is_int(proxy_workload_from_name("shop-7d9f8c6b5-x2k4q", 4), 4, "only len bytes are looked at");

    /* Labels first, in the configured order; empty values do not count. */
    static const struct otr_conf_map_entry both[] = { { "app", "cart-app" }, { "app.kubernetes.io/name", "cart" } };
    static const struct otr_conf_map_entry empty[] = { { "app.kubernetes.io/name", "" }, { "app", "legacy" } };
    struct otr_pod pod = { "shop", "cart-7d9f8c6b5-x2k4q", "u1", "n", "10.0.0.1", both, 2, NULL, 0 };
    char *keys[] = { "app.kubernetes.io/name", "app" };
    is_str(of_pod(&pod, keys, 2), "cart", "the first configured label present wins");
    char *app_first[] = { "app", "app.kubernetes.io/name" };
    is_str(of_pod(&pod, app_first, 2), "cart-app", "... in the configured order");
    pod.labels = empty;
    is_str(of_pod(&pod, keys, 2), "legacy", "an empty label value is skipped");
    pod.n_labels = 0;
    is_str(of_pod(&pod, keys, 2), "cart", "no label: from the name");
    is_str(of_pod(&pod, keys, 0), "cart", "no labels configured: from the name");
    static char long_value[400];
    memset(long_value, 'a', sizeof long_value - 1);
    static const struct otr_conf_map_entry huge[] = { { "app", long_value } };
    pod.labels = huge;
    pod.n_labels = 1;
    is_int(strlen(of_pod(&pod, keys, 2)), 255, "a value longer than the buffer is cut to fit");
    return done_testing();
}
