/*
 * Unit tests for core/lua_pattern.c: the metered find/match/gmatch/gsub
 * must behave exactly like Lua 5.4's. Every case runs on a plain Lua state
 * with the real string library and on one with ours, and the printed
 * results (or error messages) must be identical (t/lib/lua_pattern_diff.h):
 *  - a curated list of patterns (every class, set form, quantifier, anchor,
 *    capture kind, %b, %f, back-reference, and malformed ones) against a
 *    list of subjects, through every operation;
 *  - pseudo-random patterns built from pattern pieces, on random subjects;
 *  - malformed patterns and bad arguments, whose messages are also checked
 *    against the literal text scripts see;
 *  - the meter: a pathological pattern is cut off by it, it is called
 *    periodically during a long match, and the state is usable afterwards.
 * alarm() bounds the whole test.
 */
#include "tap.h"

#include "../../core/lua_pattern.c"
#include "lua_pattern_diff.h"

#include <unistd.h>

#define LIMIT 200000 /* steps per case before the case is skipped */

static const char *const patterns[] = {
    /* literals, '.', quantifiers, anchors */
    "", "a", "abc", "b", ".", "..", "a*", "a+", "a-", "a?", ".*", ".-", ".+", ".?", "^a", "^", "$", "a$", "^$",
    "^a*$", "a$b", "$a", "^^a", "x*$", "a.-b", "a.*b", "a-b", "a+b+", "x?y?z?", "ab?c", "^.-$", ".-$", "a*?",
    "a**", "a+-", "+a", "*a", "-a", "?",
    /* classes and their complements */
    "%a+", "%A+", "%c", "%C+", "%d+", "%D", "%g+", "%G", "%l+", "%L", "%p+", "%P", "%s+", "%S+", "%u+", "%U",
    "%w+", "%W", "%x+", "%X", "%z", "%%", "%.", "%]", "%-", "%q", "%(", "%$", "%^",
    /* sets */
    "[abc]", "[^abc]", "[a-c]+", "[^a-c]+", "[%a_][%w_]*", "[%d%.]+", "[]]", "[^]]", "[]a]+", "[a-]", "[-a]",
    "[a-%d]", "[%a-z]", "[^%s]+", "[.]", "[%]]", "[%^]", "[^^]", "[a^]", "[z-a]", "[%w%p]+", "[^%w]", "[a-c-e]",
    "[A-Z][a-z]*", "[%-]", "[a%-z]", "[^%]]+",
    /* captures and back-references */
    "(a)", "(a*)", "(a)(b)", "((a)(b))", "()", "()a()", "(a)%1", "(a*)%1", "(.)%1", "((.)%2)", "(a)(b)%2%1", "()%1",
    "(%w+)=(%w+)", "(.-)%s", "(h)(e)(l)(l)(o)", "(a?)", "(.-)$", "(()a)", "(a)()(b)", "(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)",
    /* %b and %f */
    "%b()", "%b[]", "%bab", "%baa", "%b))", "(%b())", "%b()%b()", "%f[%w]%w+", "%f[%W]", "%f[%a]", "%f[^%z]",
    "%f[%z]", "%f[a]", "%f[^a]", "%f[]]", "%f[%s]", "%f[^\x01-\xff]", "%f[%d]%d+%f[%D]",
    /* typical scripts */
    "%s*(.-)%s*$", "^(%w+)", "(%d+)%.(%d+)", "^%s*$", "([^,]+)", "(%w+)%s*=%s*(%w+)", "^(%a+)://([^/]+)(.*)$",
    /* malformed, raised only when matching reaches them */
    "[", "[a", "[^", "[%", "%", "a%", "(", "(()", ")", "a)", "%b", "%ba", "%f", "%fa", "%f[a", "%1", "%0", "(a)%2",
    "(a%1)", "(a)%9", "[a-", "b[", "(a)(", "a%b", "[%a", "%f[]",
};

static const char *const subjects[] = {
    "", "a", "aaa", "abc", "aabbcc", "hello world", "  trim me  ", "key=val, k2 = v2", "f(a(b)c)d", "[x][y]]",
    "THE (quick) fox", "3.14 and 2.71", "a.b-c%d", "abab", "\n\t ", "ab12_CD!?", "((()))(", "baaab", "a$b^c",
    "http://host/path?q", "\xe9t\xe9 \xff", "x,y,,z",
};

/* Subjects with a zero byte, given with their length. */
static const struct {
    const char *s;
    size_t n;
} binary_subjects[] = {{"x\0y\0", 4}, {"\0", 1}, {"a\0b", 3}};

static const struct {
    const char *p;
    size_t n;
} binary_patterns[] = {{"\0", 1}, {"a\0b", 3}, {"[\0]", 3}, {"%\0", 2}, {"[^\0]+", 5}, {"%b\0y", 4}};

static const char *const replacements[] = {"<%0>", "%1", "[%2]", "%%", "x%", "%a", "", "%1%1-%0", "%9", "%10"};
static const lua_Integer max_ns[] = {0, 1, 2, -1};

static struct pdiff D;
static unsigned long cases, skipped, errors, misses;

/* Runs one case; records and reports (up to `budget` times) a mismatch. */
static int check(struct pdiff_case *c, int *reported)
{
    enum pdiff_result r = pdiff_run(&D, c, LIMIT);
    cases++;
    if (r == PDIFF_SKIPPED) {
        skipped++;
        return 1;
    }
    if (strncmp(D.out_ref, "2 false ", 8) == 0)
        errors++;
    else if (strcmp(D.out_ref, "2 true nil") == 0)
        misses++;
    if (r == PDIFF_SAME)
        return 1;
    if ((*reported)++ < 3) {
        char qs[256], qp[256], qr[64];
        printf("# op %d: %s\n#   S=\"%s\" P=\"%s\" I=%lld R=\"%s\" N=%lld\n#   lua:  %s\n#   ours: %s\n", c->op,
               PDIFF_OPS[c->op], pdiff_quote(c->s, c->ls, qs, sizeof qs), pdiff_quote(c->p, c->lp, qp, sizeof qp),
               (long long)c->init, pdiff_quote(c->r ? c->r : "", c->lr, qr, sizeof qr), (long long)c->n,
               D.out_ref, D.out_ours);
    }
    return 0;
}

/* Every operation on one subject and pattern, with several inits,
 * replacement strings and maximum counts. Returns the mismatches. */
static int check_pair(const char *s, size_t ls, const char *p, size_t lp, int *reported)
{
    const lua_Integer inits[] = {1, 2, 0, -1, -3, -100, (lua_Integer)ls, (lua_Integer)ls + 1, (lua_Integer)ls + 2};
    struct pdiff_case c = {.s = s, .ls = ls, .p = p, .lp = lp, .init = 1, .n = 1};
    int bad = 0;

    for (c.op = 0; c.op < PDIFF_NOPS; c.op++) {
        switch (c.op) {
        case 1: case 2: case 4: case 6: case 12:
            for (size_t i = 0; i < sizeof inits / sizeof *inits; i++) {
                c.init = inits[i];
                bad += !check(&c, reported);
            }
            c.init = 1;
            break;
        case 7:
            for (size_t i = 0; i < sizeof replacements / sizeof *replacements; i++) {
                c.r = replacements[i];
                c.lr = strlen(c.r);
                bad += !check(&c, reported);
            }
            break;
        case 8: case 11: case 13:
            c.r = "<%0>";
            c.lr = 4;
            for (size_t i = 0; i < sizeof max_ns / sizeof *max_ns; i++) {
                c.n = max_ns[i];
                bad += !check(&c, reported);
            }
            break;
        default:
            bad += !check(&c, reported);
        }
    }
    return bad;
}

static void test_curated(void)
{
    size_t nsub = sizeof subjects / sizeof *subjects, nbin = sizeof binary_subjects / sizeof *binary_subjects;

    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
        int bad = 0, reported = 0;
        unsigned long before = cases;
        for (size_t j = 0; j < nsub; j++)
            bad += check_pair(subjects[j], strlen(subjects[j]), patterns[i], strlen(patterns[i]), &reported);
        for (size_t j = 0; j < nbin; j++)
            bad += check_pair(binary_subjects[j].s, binary_subjects[j].n, patterns[i], strlen(patterns[i]), &reported);
        char q[128];
        ok(bad == 0, "pattern \"%s\": %lu cases agree with Lua", pdiff_quote(patterns[i], strlen(patterns[i]), q, sizeof q),
           cases - before);
    }
    for (size_t i = 0; i < sizeof binary_patterns / sizeof *binary_patterns; i++) {
        int bad = 0, reported = 0;
        for (size_t j = 0; j < nsub; j++)
            bad += check_pair(subjects[j], strlen(subjects[j]), binary_patterns[i].p, binary_patterns[i].n, &reported);
        for (size_t j = 0; j < nbin; j++)
            bad += check_pair(binary_subjects[j].s, binary_subjects[j].n, binary_patterns[i].p, binary_patterns[i].n,
                              &reported);
        char q[64];
        ok(bad == 0, "pattern with a zero byte \"%s\" agrees with Lua",
           pdiff_quote(binary_patterns[i].p, binary_patterns[i].n, q, sizeof q));
    }
    is_int(skipped, 0, "no curated case needed more than %d steps", LIMIT);
}

/* --- random patterns ------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned next_rand(unsigned below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % below);
}

/* Pieces random patterns are made of: classes (which may get a
 * quantifier), structure, and fragments that are malformed alone. */
static const char *const class_pieces[] = {"a", "b", "c", ".", "%a", "%d", "%s", "%w", "%p", "%x", "%u", "%l", "%c",
                                           "%g", "%W", "%S", "%D", "[abc]", "[^a]", "[a-c]", "[%d_]", "[]]", "[^]a]",
                                           "[a-]", "[%a-z]", "%.", "%%", "(", ")", "$", "^", "%]"};
static const char *const other_pieces[] = {"()", "(", ")", "%1", "%2", "%b()", "%bab", "%f[%w]", "%f[%W]", "%f[a]",
                                           "^", "$", "%", "[", "%b", "%f", "%0", "%9", "[^", "a)", "%ba"};
static const char subject_chars[] = "aabbc()1 _.-%\0\n[]^$Ab";

static size_t random_pattern(char *out)
{
    size_t n = 0;
    unsigned pieces = 1 + next_rand(6);
    for (unsigned i = 0; i < pieces; i++) {
        const char *piece;
        if (next_rand(3)) {
            piece = class_pieces[next_rand(sizeof class_pieces / sizeof *class_pieces)];
            memcpy(out + n, piece, strlen(piece));
            n += strlen(piece);
            if (next_rand(2))
                out[n++] = "*+-?"[next_rand(4)];
        } else {
            piece = other_pieces[next_rand(sizeof other_pieces / sizeof *other_pieces)];
            memcpy(out + n, piece, strlen(piece));
            n += strlen(piece);
        }
    }
    return n;
}

static void test_random(void)
{
    char p[128], s[64], r[16];
    int bad = 0, reported = 0;
    unsigned long before = cases, skipped_before = skipped, errors_before = errors, misses_before = misses;
    const unsigned rounds = 40000;

    for (unsigned i = 0; i < rounds; i++) {
        struct pdiff_case c = {.p = p, .lp = random_pattern(p), .s = s, .r = r};
        c.ls = next_rand(20);
        for (size_t k = 0; k < c.ls; k++)
            s[k] = subject_chars[next_rand(sizeof subject_chars - 1)];
        c.lr = next_rand(6);
        for (size_t k = 0; k < c.lr; k++)
            r[k] = "%01a2x"[next_rand(6)];
        c.init = (lua_Integer)next_rand(25) - 12;
        c.n = (lua_Integer)next_rand(5) - 1;
        c.op = (int)next_rand(PDIFF_NOPS);
        bad += !check(&c, &reported);
    }
    ok(bad == 0, "%lu random cases agree with Lua", cases - before);
    unsigned long n_err = errors - errors_before, n_miss = misses - misses_before;
    unsigned long n_hit = cases - before - n_err - n_miss;
    ok(n_err > rounds / 20 && n_miss > rounds / 20 && n_hit > rounds / 4,
       "random cases cover matches (%lu), misses (%lu) and errors (%lu)", n_hit, n_miss, n_err);
    ok(skipped - skipped_before < rounds / 100, "fewer than 1%% of random cases skipped as too long (%lu)",
       skipped - skipped_before);
}

/* --- errors ------------------------------------------------------------------ */

/* Runs code in both states; the error messages must be equal to each other
 * and to want (with pcall directly on the library function, Lua adds no
 * position). */
static void expect_error(const char *code, const char *want)
{
    char *got[2];
    lua_State *states[2] = {D.ref, D.ours};
    for (int i = 0; i < 2; i++) {
        lua_State *L = states[i];
        if (luaL_loadbuffer(L, code, strlen(code), "=test") != LUA_OK || lua_pcall(L, 0, 2, 0) != LUA_OK) {
            printf("# %s: %s\n", code, lua_tostring(L, -1));
            got[i] = strdup("(harness failure)");
        } else {
            got[i] = strdup(lua_toboolean(L, -2) ? "(no error)" : lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        }
        lua_settop(L, 0);
    }
    is_str(got[0], want, "Lua: %s", code);
    is_str(got[1], want, "ours: %s", code);
    free(got[0]);
    free(got[1]);
}

static void test_errors(void)
{
    expect_error("return pcall(string.find, 'a', 'a[')", "malformed pattern (missing ']')");
    expect_error("return pcall(string.find, 'a', '[^')", "malformed pattern (missing ']')");
    expect_error("return pcall(string.match, 'a', 'a%')", "malformed pattern (ends with '%')");
    expect_error("return pcall(string.find, 'a', '%b')", "malformed pattern (missing arguments to '%b')");
    expect_error("return pcall(string.find, 'a', '%ba')", "malformed pattern (missing arguments to '%b')");
    expect_error("return pcall(string.find, 'a', '%fa')", "missing '[' after '%f' in pattern");
    expect_error("return pcall(string.find, 'a', '%f')", "missing '[' after '%f' in pattern");
    expect_error("return pcall(string.match, 'a', '(a')", "unfinished capture");
    expect_error("return pcall(string.match, 'a', 'a)')", "invalid pattern capture");
    expect_error("return pcall(string.find, 'a', '%1')", "invalid capture index %1");
    expect_error("return pcall(string.find, 'a', '(a%1)')", "invalid capture index %1");
    expect_error("return pcall(string.find, 'a', '(a)%0')", "invalid capture index %0");
    expect_error("return pcall(string.gsub, 'a', '(a)', '%2')", "invalid capture index %2");
    expect_error("return pcall(string.gsub, 'a', 'a', '%')", "invalid use of '%' in replacement string");
    expect_error("return pcall(string.gsub, 'a', 'a', '%x')", "invalid use of '%' in replacement string");
    expect_error("return pcall(string.gsub, 'a', 'a', {a = {}})", "invalid replacement value (a table)");
    expect_error("return pcall(string.gsub, 'a', 'a', function() return true end)",
                 "invalid replacement value (a boolean)");
    expect_error("return pcall(string.gsub, 'a', 'a', true)",
                 "bad argument #3 to 'string.gsub' (string/function/table expected, got boolean)");
    expect_error("return pcall(string.gsub, 'a', 'a', 'b', 'x')",
                 "bad argument #4 to 'string.gsub' (number expected, got string)");
    expect_error("return pcall(string.gmatch, 'a', 'a', 'x')",
                 "bad argument #3 to 'string.gmatch' (number expected, got string)");
    expect_error("return pcall(string.find)", "bad argument #1 to 'string.find' (string expected, got no value)");
    expect_error("return pcall(string.match, 'a')", "bad argument #2 to 'string.match' (string expected, got no value)");
    expect_error("return pcall(string.find, 'a', 'a', 1.5)",
                 "bad argument #3 to 'string.find' (number has no integer representation)");
    expect_error("return pcall(function() return ('a'):find({}) end)",
                 "test:1: bad argument #1 to 'find' (string expected, got table)");
    expect_error("return pcall(string.match, ('a'):rep(300), ('a?'):rep(300))", "pattern too complex");
    expect_error("return pcall(string.find, '', ('()'):rep(33))", "too many captures");
    expect_error("return pcall(string.gmatch('a]', 'a['))", "malformed pattern (missing ']')");
    expect_error("return pcall(function() for _ in string.gmatch('xa', '%f[') do end end)",
                 "test:1: malformed pattern (missing ']')");
    /* Malformed parts that matching never reaches are not errors. */
    expect_error("return pcall(string.find, 'b', 'a[')", "(no error)");
    expect_error("return pcall(string.find, 'abc', 'a)')", "(no error)"); /* no specials: a plain find */
}

/* Code beyond the generated cases: number arguments, metamethods in
 * replacement tables, reentrancy, coroutines. Both states must print the
 * same. */
static void test_literal_code(void)
{
    static const char *const codes[] = {
        "return string.find(12345, 34)",
        "return string.find(12345, 34, -3, true)",
        "return string.match(1e100, '%d+')",
        "return string.gsub(12.5, '%.', 7)",
        "return string.gsub('abc', 'b', 2.5)",
        "return string.gsub('abc', '', '-')",
        "return string.gsub('hello world', '%w+', '%0 %0', 1)",
        "return string.gsub('abc', '%w', '%1')",
        "return string.gsub('abc', '()', '%1')",
        "return string.gsub('a=1, b=2', '(%w+)=(%w+)', '%2=%1')",
        "return string.gsub('$a $b', '%$(%w+)', setmetatable({}, {__index = function(t, k) return k:upper() end}))",
        "return string.gsub('x y', '%w', function(c) return (string.gsub(c, '.', '<%0>')) end)",
        "return string.gsub('abc', '.', {a = 1, b = true})",
        "local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do t[#t + 1] = k .. v end return table.concat(t)",
        "local t = {} for p in string.gmatch('abc', '()') do t[#t + 1] = p end return table.concat(t, ',')",
        "local t = {} for w in string.gmatch('one two three', '%a+', 5) do t[#t + 1] = w end return table.concat(t, ',')",
        "local t = {} for w in string.gmatch('abc', '^.') do t[#t + 1] = w end return #t",
        "local t = {} for w in string.gmatch('^a^b', '^.') do t[#t + 1] = w end return table.concat(t, ',')",
        "local co = coroutine.wrap(function() for w in string.gmatch('a b c', '%a') do coroutine.yield(w) end end)"
        " return co() .. co() .. co()",
        "local it = string.gmatch('ab', '.') local a = it() local co = coroutine.wrap(function() return it() end)"
        " return a, co(), it()",
        "return pcall(string.gsub, 'abc', '.', function() coroutine.yield() end)",
        "return coroutine.wrap(function() return pcall(string.gsub, 'abc', '.', function() coroutine.yield() end) end)()",
        "return ('x'):rep(100):find(('x'):rep(50) .. 'y', 1, true)",
        "return string.find('a\\0b\\0c', '\\0c')",
        "return string.find('a.b', '.', 1, true), string.find('a.b', '%.'), string.find('a+b', '+', 1, true)",
        "return string.match('  x  ', '^%s*(.-)%s*$'), string.match('key: v', '(%w+):%s*(%w+)')",
        "return string.find('abc', 'b', -1), string.find('abc', 'b', -2), string.find('abc', '', 10)",
        "return string.find('abc', '', 4), string.find('abc', '', 3), string.match('abc', '()', 4)",
        "return string.gsub('abc', 'b*', '-')",
        "return string.gsub('', 'x*', '-')",
        "return string.gsub('abc', '^', '>')",
        "return string.gsub('abc', '$', '<')",
        "return string.gsub('aaa', '^a', 'b')",
        "return string.gsub('hello', '', 'x', 3)",
        "return string.gsub('hello', 'l', 'L', 1.0)",
        "return pcall(string.gsub, 'hello', 'l', 'L', 1.5)",
        "return pcall(string.rep)",
        /* around the nesting limit and the capture limit */
        "return pcall(string.match, ('a'):rep(199), ('a?'):rep(199))",
        "return pcall(string.match, ('a'):rep(200), ('a?'):rep(200))",
        "return pcall(string.match, ('a'):rep(201), ('a?'):rep(201))",
        "return pcall(string.match, ('a'):rep(100), ('a?'):rep(250))",
        "return pcall(string.match, ('a'):rep(250), ('a*'):rep(250))",
        "return pcall(string.match, 'a', ('('):rep(31) .. 'a' .. (')'):rep(31))",
        "return pcall(string.match, 'a', ('('):rep(32) .. 'a' .. (')'):rep(32))",
        "return pcall(string.match, 'a', ('('):rep(33) .. 'a' .. (')'):rep(33))",
        "return pcall(string.find, 'ab', ('()'):rep(32))",
        "return pcall(string.gsub, ('x'):rep(300), ('x?'):rep(199), '.')",
        "return string.format('%q', select(1, string.gsub('\\n\\0\\r', '%c', '%%%0')))",
    };
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        char *out[2];
        lua_State *states[2] = {D.ref, D.ours};
        bool loaded = true;
        for (int k = 0; k < 2; k++) {
            lua_State *L = states[k];
            lua_getglobal(L, "RUN");
            if (luaL_loadbuffer(L, codes[i], strlen(codes[i]), "=code") != LUA_OK) {
                loaded = false;
            } else {
                lua_call(L, 1, 1);
            }
            out[k] = strdup(lua_tostring(L, -1));
            lua_settop(L, 0);
        }
        if (!ok(loaded && strcmp(out[0], out[1]) == 0, "same as Lua: %s", codes[i]))
            printf("#   lua:  %s\n#   ours: %s\n", out[0], out[1]);
        free(out[0]);
        free(out[1]);
    }
}

/* --- the meter ------------------------------------------------------------------ */

static int eval_ours(const char *code, char *out, size_t outlen)
{
    lua_State *L = D.ours;
    int rc = luaL_loadstring(L, code);
    if (rc == LUA_OK)
        rc = lua_pcall(L, 0, 1, 0);
    snprintf(out, outlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    lua_settop(L, 0);
    return rc;
}

static void test_meter(void)
{
    char out[256];
    static const char *const patho[] = {
        "return string.find(('a'):rep(200), '.-.-.-.-b')",
        "return string.match(('a'):rep(200), '.-.-.-.-b')",
        "for x in string.gmatch(('a'):rep(200), '.-.-.-.-b') do end",
        "return string.gsub(('a'):rep(200), '.-.-.-.-b', 'x')",
        "return string.find(('a'):rep(5000), '(.-)%1b')",
        "return string.find(('('):rep(20000), '%b()')",
        "return string.find(('a'):rep(200), '[%w%s%p]-[%w%s%p]-[%w%s%p]-b')",
        "return string.gsub(('x'):rep(50000), '(y*)', ('%1'):rep(10000))",
        "for i = 1, 1e6 do string.find(('a'):rep(1 << 16), ('a'):rep(1 << 12) .. 'b', 1, true) end",
    };
    for (size_t i = 0; i < sizeof patho / sizeof *patho; i++) {
        pdiff_steps = pdiff_charges = 0;
        pdiff_limit = 1000000;
        int rc = eval_ours(patho[i], out, sizeof out);
        pdiff_limit = UINT64_MAX;
        ok(rc != LUA_OK && strstr(out, "pdiff: step limit"), "cut off by the meter: %s (%s)", patho[i], out);
        /* Linear scans (%b, a repetition's run, a memchr window) are charged
         * whole, so the overshoot is at most a batch plus one scan of these
         * 64 KiB subjects. */
        ok(pdiff_charges > 1 && pdiff_steps <= 1000000 + OTR_LUA_PATTERN_BATCH + 70000,
           "  promptly: %llu steps charged in %llu calls", (unsigned long long)pdiff_steps,
           (unsigned long long)pdiff_charges);
    }
    is_int(eval_ours("return select(2, string.gsub('a,b,c', ',', ';'))", out, sizeof out), LUA_OK,
           "the state is usable after the meter raised");
    is_str(out, "2", "and computes the right thing");

    /* Small calls are charged too: the remainder goes to the meter when the
     * function returns. */
    pdiff_steps = pdiff_charges = 0;
    eval_ours("return string.find('hello world', 'o w')", out, sizeof out);
    ok(pdiff_charges == 1 && pdiff_steps >= 1, "a short plain find is charged once (%llu steps)",
       (unsigned long long)pdiff_steps);
    pdiff_steps = 0;
    eval_ours("return string.match('key = value', '^(%w+)%s*=%s*(%w+)$')", out, sizeof out);
    ok(pdiff_steps >= 13 && pdiff_steps < 200, "a short match costs steps in proportion (%llu)",
       (unsigned long long)pdiff_steps);
    /* A plain find's cost grows with the bytes it searches. */
    pdiff_steps = 0;
    eval_ours("return string.find(('a'):rep(1 << 20), 'b', 1, true)", out, sizeof out);
    ok(pdiff_steps >= (1 << 20) / BULK_BYTES_PER_STEP, "a plain find over 1 MiB is charged by size (%llu steps)",
       (unsigned long long)pdiff_steps);
}

int main(void)
{
    alarm(300);
    pdiff_init(&D);
    test_errors();
    test_literal_code();
    test_meter();
    test_curated();
    test_random();
    pdiff_fini(&D);
    return done_testing();
}
