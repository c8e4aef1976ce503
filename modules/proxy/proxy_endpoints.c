/*
 * proxy_endpoints: endpoint addresses and the endpoints file parser (see
 * proxy_endpoints.h).
 */
#include "proxy_endpoints.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int proxy_epaddr_from_sa(struct proxy_epaddr *out, const struct sockaddr *sa, uint16_t port)
{
    char ip[INET6_ADDRSTRLEN];
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
        memcpy(in, sa, sizeof *in);
        in->sin_port = htons(port);
        uv_ip4_name(in, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "%s:%u", ip, port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
        memcpy(in6, sa, sizeof *in6);
        in6->sin6_port = htons(port);
        in6->sin6_flowinfo = 0; /* not part of the endpoint's identity */
        uv_ip6_name(in6, ip, sizeof ip);
        snprintf(out->text, sizeof out->text, "[%s]:%u", ip, port);
        return 0;
    }
    return UV_EINVAL;
}

int proxy_epaddr_set(struct proxy_epaddr *out, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
    return proxy_epaddr_from_sa(out, (struct sockaddr *)&ss, port);
}

int proxy_epaddr_parse(const char *text, size_t len, struct proxy_epaddr *out)
{
    char host[INET6_ADDRSTRLEN + 16];
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (text[i - 1] == ':') {
            colon = text + i - 1;
            break;
        }
    if (!colon)
        return UV_EINVAL;
    const char *h = text;
    size_t hl = (size_t)(colon - text);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
        if (!memchr(h, ':', hl))
            return UV_EINVAL; /* brackets are for IPv6 only */
    } else if (memchr(h, ':', hl)) {
        return UV_EINVAL; /* an IPv6 address needs its brackets before the port */
    }
    if (hl == 0 || hl >= sizeof host || memchr(h, '\0', hl))
        return UV_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    const char *p = colon + 1, *end = text + len;
    if (p == end || end - p > 5)
        return UV_EINVAL;
    unsigned port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return UV_EINVAL;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port == 0 || port > 65535)
        return UV_EINVAL;
    return proxy_epaddr_set(out, host, (uint16_t)port);
}

int proxy_epaddr_cmp(const struct proxy_epaddr *a, const struct proxy_epaddr *b)
{
    int fa = a->sa.ss_family, fb = b->sa.ss_family;
    if (fa != fb)
        return fa < fb ? -1 : 1;
    int r;
    uint16_t pa, pb;
    if (fa == AF_INET) {
        const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        if ((r = memcmp(&x->sin_addr, &y->sin_addr, sizeof x->sin_addr)))
            return r;
        pa = ntohs(x->sin_port);
        pb = ntohs(y->sin_port);
    } else {
        const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        if ((r = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr)))
            return r;
        if (x->sin6_scope_id != y->sin6_scope_id)
            return x->sin6_scope_id < y->sin6_scope_id ? -1 : 1;
        pa = ntohs(x->sin6_port);
        pb = ntohs(y->sin6_port);
    }
    return pa == pb ? 0 : pa < pb ? -1 : 1;
}

static int epaddr_qsort_cmp(const void *a, const void *b)
{
    return proxy_epaddr_cmp(a, b);
}

size_t proxy_epaddrs_normalize(struct proxy_epaddr *addrs, size_t n)
{
    if (n < 2)
        return n;
    qsort(addrs, n, sizeof *addrs, epaddr_qsort_cmp);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (proxy_epaddr_cmp(&addrs[k - 1], &addrs[i]) != 0)
            addrs[k++] = addrs[i];
    return k;
}

static int index_cmp(const void *a, const void *b, void *arg)
{
    const struct proxy_epaddr *addrs = arg;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    int r = proxy_epaddr_cmp(&addrs[i], &addrs[j]);
    return r ? r : i < j ? -1 : i > j;
}

int proxy_epaddrs_dedupe(struct proxy_epaddr *addrs, size_t *n)
{
    if (*n < 2)
        return 0;
    /* Sort indexes by address (then position): every run of equal
     * addresses starts with the first occurrence; the others go. */
    uint32_t *idx = malloc(*n * sizeof *idx);
    bool *drop = calloc(*n, sizeof *drop);
    if (!idx || !drop) {
        free(idx);
        free(drop);
        return UV_ENOMEM;
    }
    for (size_t i = 0; i < *n; i++)
        idx[i] = (uint32_t)i;
    qsort_r(idx, *n, sizeof *idx, index_cmp, addrs);
    for (size_t i = 1; i < *n; i++)
        if (proxy_epaddr_cmp(&addrs[idx[i - 1]], &addrs[idx[i]]) == 0)
            drop[idx[i]] = true;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!drop[i])
            addrs[k++] = addrs[i];
    *n = k;
    free(idx);
    free(drop);
    return 0;
}

bool proxy_dns_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    bool all_digits = true;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? name[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63)
                return false;
            if (i < len)
                all_digits = true, label = 0;
            continue;
        }
        bool digit = ch >= '0' && ch <= '9';
        if (!digit && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && ch != '-' && ch != '_')
            return false;
        all_digits = all_digits && digit;
        label++;
    }
    return !all_digits;
}

/* Copies s into out (at most 48 bytes shown), non-printable bytes as '?',
 * so that a message quoting file content stays one readable line. */
static void quote_into(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap && i < 48; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (n > 48 && k + 4 < cap)
        out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
}

int proxy_endpoints_parse(const char *buf, size_t len, const char *file, struct proxy_epaddr **out, size_t *n,
                          char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", file, je.line, je.column, je.text);
        return UV_EINVAL;
    }
    char q[64];
    const char *key;
    json_t *v, *list = NULL;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: $: expected an object {\"endpoints\": [\"ip:port\", ...]}", file);
        goto fail;
    }
    json_object_foreach(root, key, v) {
        if (strcmp(key, "endpoints") != 0) {
            quote_into(q, sizeof q, key, strlen(key));
            snprintf(err, errlen, "%s: $.%s: unknown key (expected only \"endpoints\")", file, q);
            goto fail;
        }
        list = v;
    }
    if (!list) {
        snprintf(err, errlen, "%s: $.endpoints: missing", file);
        goto fail;
    }
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s: $.endpoints: expected an array of \"ip:port\" strings", file);
        goto fail;
    }
    size_t count = json_array_size(list);
    if (count > PROXY_ENDPOINTS_MAX) {
        snprintf(err, errlen, "%s: $.endpoints: %zu entries, at most %d allowed", file, count, PROXY_ENDPOINTS_MAX);
        goto fail;
    }
    struct proxy_epaddr *addrs = count ? calloc(count, sizeof *addrs) : NULL;
    if (count && !addrs) {
        snprintf(err, errlen, "%s: out of memory", file);
        goto fail;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(list, i);
        if (!json_is_string(e)) {
            snprintf(err, errlen, "%s: $.endpoints[%zu]: expected a string \"ip:port\"", file, i);
            free(addrs);
            goto fail;
        }
        const char *s = json_string_value(e);
        size_t sl = json_string_length(e);
        if (proxy_epaddr_parse(s, sl, &addrs[i]) != 0) {
            quote_into(q, sizeof q, s, sl);
            snprintf(err, errlen, "%s: $.endpoints[%zu]: expected \"ip:port\" or \"[ipv6]:port\", got \"%s\"", file,
                     i, q);
            free(addrs);
            goto fail;
        }
    }
    json_decref(root);
    if (proxy_epaddrs_dedupe(addrs, &count) != 0) {
        free(addrs);
        snprintf(err, errlen, "%s: out of memory", file);
        return UV_ENOMEM;
    }
    *n = count;
    *out = count ? addrs : NULL;
    if (!count)
        free(addrs);
    return 0;
fail:
    json_decref(root);
    return UV_EINVAL;
}
