/*
 * libFuzzer target for core/lua_pattern.c: differential against Lua 5.4's
 * own string library (t/lib/lua_pattern_diff.h). Each input is one case:
 *
 *   byte 0   operation (index into PDIFF_OPS: find/match/gmatch/gsub forms)
 *   byte 1   init, as a signed byte
 *   byte 2   max replacements for gsub, as a signed byte
 *   byte 3   pattern length (mod 65)
 *   byte 4   replacement string length (mod 9)
 *   then     the pattern, the replacement, and the subject (the rest, at
 *            most 64 bytes)
 *
 * The result (values and their types, or the error message) must be
 * byte-identical to Lua's; a difference aborts. A case that needs more
 * than STEP_LIMIT matcher steps is not run on Lua's matcher, which cannot
 * be interrupted.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include -Icore \
 *       t/fuzz/lua_pattern_fuzz.c $(pkg-config --cflags --libs lua5.4) -o /tmp/lua_pattern_fuzz
 */
#include "../../core/lua_pattern.c"
#include "../lib/lua_pattern_diff.h"

#include <stdint.h>

#define STEP_LIMIT 100000
#define MAX_PART 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct pdiff d;
    static int ready;

    if (size < 5)
        return 0;
    if (!ready) {
        pdiff_init(&d);
        ready = 1;
    }
    struct pdiff_case c = {
        .op = data[0] % PDIFF_NOPS,
        .init = (int8_t)data[1],
        .n = (int8_t)data[2],
        .lp = data[3] % (MAX_PART + 1),
        .lr = data[4] % 9,
    };
    data += 5;
    size -= 5;
    if (c.lp > size)
        c.lp = size;
    c.p = (const char *)data;
    data += c.lp;
    size -= c.lp;
    if (c.lr > size)
        c.lr = size;
    c.r = (const char *)data;
    data += c.lr;
    size -= c.lr;
    c.s = (const char *)data;
    c.ls = size > MAX_PART ? MAX_PART : size;

    if (pdiff_run(&d, &c, STEP_LIMIT) == PDIFF_DIFFERENT) {
        char qs[300], qp[300], qr[64];
        fprintf(stderr, "lua_pattern differs from Lua: %s\n  S=\"%s\" P=\"%s\" I=%lld R=\"%s\" N=%lld\n  lua:  %s\n  ours: %s\n",
                PDIFF_OPS[c.op], pdiff_quote(c.s, c.ls, qs, sizeof qs), pdiff_quote(c.p, c.lp, qp, sizeof qp),
                (long long)c.init, pdiff_quote(c.r, c.lr, qr, sizeof qr), (long long)c.n, d.out_ref, d.out_ours);
        abort();
    }
    /* Free what this input allocated in both states. libFuzzer runs a full
     * LeakSanitizer scan after every input that mallocs more than it frees,
     * which otherwise costs 20 times the case itself. */
    static const char *const globals[] = {"S", "P", "R", "I", "N"};
    lua_State *states[] = {d.ref, d.ours};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof globals / sizeof *globals; i++) {
            lua_pushnil(states[k]);
            lua_setglobal(states[k], globals[i]);
        }
        lua_gc(states[k], LUA_GCCOLLECT, 0);
    }
    return 0;
}
