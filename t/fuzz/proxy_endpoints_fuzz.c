/*
 * libFuzzer target for the endpoints file parser (and the address parser
 * under it).
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       t/fuzz/proxy_endpoints_fuzz.c -o build-fuzz/proxy_endpoints_fuzz $(pkg-config --libs jansson libuv)
 *   (or: t/fuzz/run 60)
 *
 * Besides memory safety it checks the parser's promises: an error always
 * comes with a message naming the file; a success yields at most
 * PROXY_ENDPOINTS_MAX addresses without duplicates, each of whose text
 * parses back to the same address.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/proxy/proxy_endpoints.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_epaddr *a = NULL;
    size_t n = 0;
    char err[512] = "";
    int rc = proxy_endpoints_parse((const char *)data, size, "f.json", &a, &n, err, sizeof err);
    if (rc != 0) {
        assert(a == NULL && n == 0);
        assert(strncmp(err, "f.json", 6) == 0);
        return 0;
    }
    assert(n <= PROXY_ENDPOINTS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct proxy_epaddr back;
        assert(proxy_epaddr_parse(a[i].text, strlen(a[i].text), &back) == 0);
        assert(proxy_epaddr_cmp(&back, &a[i]) == 0);
    }
    /* No duplicates: sorted, the list is strictly increasing. */
    assert(proxy_epaddrs_normalize(a, n) == n);
    for (size_t i = 1; i < n; i++)
        assert(proxy_epaddr_cmp(&a[i - 1], &a[i]) < 0);
    free(a);
    /* The raw bytes as one address, too. */
    struct proxy_epaddr one;
    if (proxy_epaddr_parse((const char *)data, size, &one) == 0) {
        struct proxy_epaddr back;
        assert(proxy_epaddr_parse(one.text, strlen(one.text), &back) == 0 && proxy_epaddr_cmp(&back, &one) == 0);
    }
    return 0;
}
