/*
 * metrics_hash: a fast non-cryptographic hash for the module's
 * open-addressing tables (label sets, family names, set members). Eight
 * bytes at a time with a multiply-xorshift mix; good spread for short
 * keys, which is all it sees.
 */
#ifndef OTR_METRICS_HASH_H
#define OTR_METRICS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t metrics_hash_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t metrics_hash(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ metrics_hash_mix(w)) * 0x9e3779b97f4a7c15ull;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ metrics_hash_mix(w ^ (n << 56))) * 0x9e3779b97f4a7c15ull;
    return metrics_hash_mix(h);
}

#endif
