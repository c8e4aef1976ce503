/*
 * libFuzzer target for the workload derived from a pod's name and labels
 * (proxy_workload.c), which come from the inventory file. Besides memory
 * safety: the name-derived workload is a non-empty prefix of the name,
 * shortened only at a '-', and the label path copies a value, cut to fit.
 *
 *   t/fuzz/run 60
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_workload.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* Input: "<name>\n<label value>" (the value optional). */
    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, data, len);
    s[len] = 0;
    size_t nl = strlen(s); /* a NUL ends the name, as a C string would */
    char *value = NULL;
    char *cut = memchr(s, '\n', nl);
    if (cut) {
        *cut = 0;
        value = cut + 1;
        nl = (size_t)(cut - s);
    }
    size_t n = proxy_workload_from_name(s, nl);
    assert(n <= nl);
    assert(n == nl || (n > 0 && s[n] == '-'));

    struct otr_conf_map_entry label = { "app", value ? value : "" };
    struct otr_pod pod = { "ns", s, "", "", "", &label, 1, NULL, 0 };
    char *keys[] = { "app" };
    struct otr_conf_array conf = { keys, 1 };
    char out[32];
    size_t w = proxy_workload(&pod, &conf, out, sizeof out);
    assert(w < sizeof out && strlen(out) == w);
    if (value && value[0])
        assert(strncmp(out, value, w) == 0);
    else
        assert(strncmp(out, s, w) == 0);
    free(s);
    return 0;
}
