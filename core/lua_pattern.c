/*
 * lua_pattern: Lua 5.4 patterns with a step meter (see lua_pattern.h).
 *
 * The matcher is a backtracking interpreter that walks the pattern text
 * directly, item by item, with the semantics of Lua 5.4 (reference manual
 * §6.4.1) and the observable behaviour of its implementation, which t/unit
 * and t/fuzz compare against Lua's own library. Walking the text rather
 * than compiling it first matters: Lua reports a malformed part of a
 * pattern only when matching reaches it, so string.find('b', 'a[') is nil
 * while string.find('a', 'a[') is an error, and scripts may rely on either.
 * For the same reason the nesting limit ("pattern too complex") is counted
 * the way Lua counts it: one level per recursive attempt (a capture
 * boundary, an optional item that matched, each length a repetition tries).
 *
 * All state of one match lives in a struct pat_state on the C stack, and
 * every Lua value the functions build sits on the Lua stack, so a meter
 * that raises a Lua error (longjmp) leaks nothing.
 */
#include "lua_pattern.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

#define PAT_ESC '%'
/* Lua's own limits (LUA_MAXCAPTURES and MAXCCALLS of its string library):
 * scripts see the same "too many captures" and "pattern too complex". */
#define PAT_MAX_CAPTURES 32
#define PAT_MAX_DEPTH 200

/* Capture lengths that are not lengths. */
#define CAP_OPEN (-1)     /* opened, not closed yet */
#define CAP_POSITION (-2) /* "()": captures a position */

/* A step (one pattern item tried, one subject byte a repetition or %b
 * scans) costs about as much as a VM instruction (bench/lua_pattern).
 * Other work is charged in bytes per step: bulk byte operations (memchr,
 * memcmp, the specials scan) are vectorised by the C library, far cheaper
 * per byte than a step; scanning a set's text costs a comparison or two
 * per byte. */
#define BULK_BYTES_PER_STEP 32
#define SET_BYTES_PER_STEP 8
/* A plain find scans at most this many bytes per memchr call. */
#define PLAIN_WINDOW 65536

struct pat_capture {
    const char *start;
    ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
};

struct pat_state {
    lua_State *L;
    const struct otr_lua_pattern_meter *meter;
    const char *src, *src_end; /* the whole subject */
    const char *pat_end;
    uint64_t steps; /* not charged yet */
    int depth_left;
    int level; /* captures opened so far */
    struct pat_capture cap[PAT_MAX_CAPTURES];
};

static int uc(char c)
{
    return (unsigned char)c;
}

/* ------------------------------------------------------------------------ */
/* Metering                                                                  */

static void pat_flush(struct pat_state *ps)
{
    uint64_t n = ps->steps;
    ps->steps = 0;
    if (n)
        ps->meter->charge(ps->L, n);
}

static inline void pat_tick(struct pat_state *ps, uint64_t n)
{
    ps->steps += n;
    if (ps->steps >= OTR_LUA_PATTERN_BATCH)
        pat_flush(ps);
}

static void pat_init(struct pat_state *ps, lua_State *L, const struct otr_lua_pattern_meter *meter, const char *s,
                     size_t ls, const char *p, size_t lp)
{
    ps->L = L;
    ps->meter = meter;
    ps->src = s;
    ps->src_end = s + ls;
    ps->pat_end = p + lp;
    ps->steps = 0;
}

/* Before each attempt at a new subject position. */
static void pat_reset(struct pat_state *ps)
{
    ps->level = 0;
    ps->depth_left = PAT_MAX_DEPTH;
}

/* ------------------------------------------------------------------------ */
/* Single-character classes                                                  */

/* Whether c is in class %cl; a letter that names no class (or any other
 * character) stands for itself. Upper-case class letters complement. */
static bool class_has(int cl, int c)
{
    bool in;
    switch (tolower(cl)) {
    case 'a': in = isalpha(c); break;
    case 'c': in = iscntrl(c); break;
    case 'd': in = isdigit(c); break;
    case 'g': in = isgraph(c); break;
    case 'l': in = islower(c); break;
    case 'p': in = ispunct(c); break;
    case 's': in = isspace(c); break;
    case 'u': in = isupper(c); break;
    case 'w': in = isalnum(c); break;
    case 'x': in = isxdigit(c); break;
    case 'z': in = c == 0; break; /* deprecated, still accepted by Lua 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !in : in;
}

/* Whether c is in the set whose '[' is at open and whose closing ']' is at
 * close. The first character after "[" or "[^" is an ordinary member even
 * if it is ']'; "x-y" is a range unless the '-' is last. */
static bool set_has(struct pat_state *ps, int c, const char *open, const char *close)
{
    const char *p = open + 1;
    bool in = true;

    pat_tick(ps, (uint64_t)(close - open) / SET_BYTES_PER_STEP);
    if (*p == '^') {
        in = false;
        p++;
    }
    for (; p < close; p++) {
        if (*p == PAT_ESC) {
            p++;
            if (class_has(uc(*p), c))
                return in;
        } else if (p[1] == '-' && p + 2 < close) {
            if (uc(p[0]) <= c && c <= uc(p[2]))
                return in;
            p += 2;
        } else if (uc(*p) == c) {
            return in;
        }
    }
    return !in;
}

/* The end of the single-character class that starts at p: past "%x", past
 * the ']' of a set, or past an ordinary character. */
static const char *item_end(struct pat_state *ps, const char *p)
{
    const char *end = ps->pat_end, *open = p;

    switch (*p++) {
    case PAT_ESC:
        if (p == end)
            luaL_error(ps->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (p < end && *p == '^')
            p++;
        do {
            if (p == end)
                luaL_error(ps->L, "malformed pattern (missing ']')");
            if (*p++ == PAT_ESC && p < end)
                p++; /* "%]" is a member, not the end */
        } while (p == end || *p != ']');
        pat_tick(ps, (uint64_t)(p - open) / SET_BYTES_PER_STEP);
        return p + 1;
    default:
        return p;
    }
}

/* Whether the subject character at s is in the class p..ep. */
static bool item_has(struct pat_state *ps, const char *s, const char *p, const char *ep)
{
    if (s >= ps->src_end)
        return false;
    int c = uc(*s);
    switch (*p) {
    case '.': return true;
    case PAT_ESC: return class_has(uc(p[1]), c);
    case '[': return set_has(ps, c, p, ep - 1);
    default: return uc(*p) == c;
    }
}

/* ------------------------------------------------------------------------ */
/* The matcher                                                               */

static const char *pat_do(struct pat_state *ps, const char *s, const char *p);

/* %bxy at s: x, then text in which x and y balance, then y. */
static const char *match_balance(struct pat_state *ps, const char *s, const char *p)
{
    if (p >= ps->pat_end - 1)
        luaL_error(ps->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ps->src_end || *s != p[0])
        return NULL;
    char open = p[0], close = p[1];
    size_t depth = 1;
    const char *q = s;
    while (++q < ps->src_end) {
        if (*q == close) {
            if (--depth == 0) {
                pat_tick(ps, (uint64_t)(q - s));
                return q + 1;
            }
        } else if (*q == open) {
            depth++;
        }
    }
    pat_tick(ps, (uint64_t)(q - s));
    return NULL;
}

/* %1-%9 (digit is the character after '%'): the text of a closed capture
 * again. A position capture never matches text. */
static const char *match_backref(struct pat_state *ps, const char *s, int digit)
{
    int i = digit - '1';
    if (i < 0 || i >= ps->level || ps->cap[i].len == CAP_OPEN)
        luaL_error(ps->L, "invalid capture index %%%d", i + 1);
    ptrdiff_t len = ps->cap[i].len;
    if (len < 0)
        return NULL;
    pat_tick(ps, 1 + (uint64_t)len / BULK_BYTES_PER_STEP);
    if (ps->src_end - s >= len && memcmp(ps->cap[i].start, s, (size_t)len) == 0)
        return s + len;
    return NULL;
}

/* The class p..ep repeated as often as possible (starting at s), giving
 * back one character at a time until the rest of the pattern matches. */
static const char *expand_greedy(struct pat_state *ps, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (item_has(ps, s + n, p, ep))
        n++;
    pat_tick(ps, (uint64_t)n);
    for (; n >= 0; n--) {
        const char *e = pat_do(ps, s + n, ep + 1);
        if (e)
            return e;
    }
    return NULL;
}

/* The class p..ep repeated as few times as the rest of the pattern allows. */
static const char *expand_lazy(struct pat_state *ps, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *e = pat_do(ps, s, ep + 1);
        if (e)
            return e;
        if (!item_has(ps, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *capture_open(struct pat_state *ps, const char *s, const char *p, ptrdiff_t kind)
{
    if (ps->level >= PAT_MAX_CAPTURES)
        luaL_error(ps->L, "too many captures");
    ps->cap[ps->level].start = s;
    ps->cap[ps->level].len = kind;
    ps->level++;
    const char *e = pat_do(ps, s, p);
    if (!e)
        ps->level--;
    return e;
}

/* ')' closes the innermost capture still open. */
static const char *capture_close(struct pat_state *ps, const char *s, const char *p)
{
    int i = ps->level - 1;
    while (i >= 0 && ps->cap[i].len != CAP_OPEN)
        i--;
    if (i < 0)
        luaL_error(ps->L, "invalid pattern capture");
    ps->cap[i].len = s - ps->cap[i].start;
    const char *e = pat_do(ps, s, p);
    if (!e)
        ps->cap[i].len = CAP_OPEN;
    return e;
}

/* %f[set] at s: the previous character (or "\0" at the subject's start) is
 * not in the set and the current one (or "\0" at its end) is. Returns the
 * pattern past the set, or NULL if the frontier is not here. */
static const char *match_frontier(struct pat_state *ps, const char *s, const char *p)
{
    if (p == ps->pat_end || *p != '[')
        luaL_error(ps->L, "missing '[' after '%%f' in pattern");
    const char *ep = item_end(ps, p);
    int prev = s == ps->src ? 0 : uc(s[-1]);
    int cur = s < ps->src_end ? uc(*s) : 0;
    if (!set_has(ps, prev, p, ep - 1) && set_has(ps, cur, p, ep - 1))
        return ep;
    return NULL;
}

/* Matches the pattern from p against the subject from s; returns the end of
 * the match or NULL. Each loop turn consumes one pattern item; recursion is
 * needed only where the rest of the pattern decides between alternatives. */
static const char *pat_do(struct pat_state *ps, const char *s, const char *p)
{
    const char *end = ps->pat_end;

    if (ps->depth_left-- == 0)
        luaL_error(ps->L, "pattern too complex");
    for (;;) {
        pat_tick(ps, 1);
        if (p == end)
            break;
        switch (*p) {
        case '(':
            if (p + 1 < end && p[1] == ')')
                s = capture_open(ps, s, p + 2, CAP_POSITION);
            else
                s = capture_open(ps, s, p + 1, CAP_OPEN);
            goto done;
        case ')':
            s = capture_close(ps, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != end)
                break; /* not at the end: an ordinary character */
            if (s != ps->src_end)
                s = NULL;
            goto done;
        case PAT_ESC:
            if (p + 1 == end)
                break; /* item_end reports it */
            if (p[1] == 'b') {
                s = match_balance(ps, s, p + 2);
                if (!s)
                    goto done;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p = match_frontier(ps, s, p + 2);
                if (!p) {
                    s = NULL;
                    goto done;
                }
                continue;
            }
            if (p[1] >= '0' && p[1] <= '9') {
                s = match_backref(ps, s, uc(p[1]));
                if (!s)
                    goto done;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }

        /* A single-character class with an optional repetition suffix. */
        const char *ep = item_end(ps, p);
        char suffix = ep < end ? *ep : '\0';
        if (!item_has(ps, s, p, ep)) {
            if (suffix == '*' || suffix == '?' || suffix == '-') {
                p = ep + 1; /* zero repetitions are fine */
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (suffix) {
        case '?': {
            const char *e = pat_do(ps, s + 1, ep + 1);
            if (e) {
                s = e;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+': s = expand_greedy(ps, s + 1, p, ep); goto done;
        case '*': s = expand_greedy(ps, s, p, ep); goto done;
        case '-': s = expand_lazy(ps, s, p, ep); goto done;
        default:
            s++;
            p = ep;
            continue;
        }
    }
done:
    ps->depth_left++;
    return s;
}

/* ------------------------------------------------------------------------ */
/* Captures as Lua values                                                    */

/* Capture i of the match s..e: sets *text and returns its length, or pushes
 * the position and returns CAP_POSITION. With no captures, "capture 1" is
 * the whole match (what %1 means in a replacement then). */
static ptrdiff_t capture_get(struct pat_state *ps, int i, const char *s, const char *e, const char **text)
{
    if (i >= ps->level) {
        if (i != 0)
            luaL_error(ps->L, "invalid capture index %%%d", i + 1);
        *text = s;
        return e - s;
    }
    ptrdiff_t len = ps->cap[i].len;
    *text = ps->cap[i].start;
    if (len == CAP_OPEN)
        luaL_error(ps->L, "unfinished capture");
    if (len == CAP_POSITION)
        lua_pushinteger(ps->L, (ps->cap[i].start - ps->src) + 1);
    return len;
}

static void push_capture(struct pat_state *ps, int i, const char *s, const char *e)
{
    const char *text;
    ptrdiff_t len = capture_get(ps, i, s, e, &text);
    if (len != CAP_POSITION)
        lua_pushlstring(ps->L, text, (size_t)len);
}

/* Pushes every capture (or the whole match s..e if there are none and s is
 * not NULL); returns how many. */
static int push_captures(struct pat_state *ps, const char *s, const char *e)
{
    int n = ps->level == 0 && s ? 1 : ps->level;
    luaL_checkstack(ps->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(ps, i, s, e);
    pat_tick(ps, (uint64_t)n);
    return n;
}

/* ------------------------------------------------------------------------ */
/* The library functions                                                     */

static const struct otr_lua_pattern_meter *meter_at(lua_State *L, int upvalue)
{
    return lua_touserdata(L, lua_upvalueindex(upvalue));
}

/* A 1-based start argument as a 1-based position: negative counts from the
 * end, and anything before the start is the start. May be past the end. */
static size_t start_position(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len - (size_t)(-(pos + 1));
}

/* Whether find must run the matcher: the pattern has a magic character. */
static bool has_specials(struct pat_state *ps, const char *p, size_t lp)
{
    static const bool special[256] = {['^'] = 1, ['$'] = 1, ['*'] = 1, ['+'] = 1, ['?'] = 1,
                                      ['.'] = 1, ['('] = 1, ['['] = 1, ['%'] = 1, ['-'] = 1};
    pat_tick(ps, lp / BULK_BYTES_PER_STEP);
    for (size_t i = 0; i < lp; i++)
        if (special[uc(p[i])])
            return true;
    return false;
}

/* First occurrence of needle in hay: memchr for the needle's first byte,
 * then memcmp for the rest, as Lua does. The work is charged as it is
 * done: the bytes memchr skips, and each candidate compared. glibc's memmem
 * is linear but its cost per byte varies 1000-fold with the input (0.01 to
 * 15 ns measured), so no fixed rate would charge it fairly; this search is
 * quadratic on adversarial input (a^n for a^k b), but every comparison is
 * charged, so such a search ends as a budget failure as promptly as any
 * other. memchr runs over windows so that no single call goes unmetered
 * for long. */
static const char *find_plain(struct pat_state *ps, const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0)
        return hay;
    if (m > n)
        return NULL;
    const char *at = hay, *last = hay + (n - m); /* the last possible start */
    uint64_t compare = 1 + (uint64_t)(m - 1) / BULK_BYTES_PER_STEP;
    while (at <= last) {
        size_t span = (size_t)(last - at) + 1;
        if (span > PLAIN_WINDOW)
            span = PLAIN_WINDOW;
        const char *c = memchr(at, needle[0], span);
        if (!c) {
            pat_tick(ps, 1 + span / BULK_BYTES_PER_STEP);
            at += span;
            continue;
        }
        pat_tick(ps, (uint64_t)(c - at) / BULK_BYTES_PER_STEP + compare);
        if (memcmp(c + 1, needle + 1, m - 1) == 0)
            return c;
        at = c + 1;
    }
    return NULL;
}

/* string.find (find) and string.match (!find). */
static int find_or_match(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    struct pat_state ps;

    if (init > ls) {
        lua_pushnil(L);
        return 1;
    }
    pat_init(&ps, L, meter_at(L, 1), s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(&ps, p, lp))) {
        const char *hit = find_plain(&ps, s + init, ls - init, p, lp);
        pat_flush(&ps);
        if (hit) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(hit - s) + lp));
            return 2;
        }
        lua_pushnil(L);
        return 1;
    }
    bool anchor = lp > 0 && *p == '^';
    if (anchor)
        p++;
    for (const char *at = s + init;; at++) {
        pat_reset(&ps);
        const char *e = pat_do(&ps, at, p);
        if (e) {
            int n;
            if (find) {
                lua_pushinteger(L, (at - s) + 1);
                lua_pushinteger(L, e - s);
                n = push_captures(&ps, NULL, NULL) + 2;
            } else {
                n = push_captures(&ps, at, e);
            }
            pat_flush(&ps);
            return n;
        }
        if (anchor || at >= ps.src_end)
            break;
    }
    pat_flush(&ps);
    lua_pushnil(L);
    return 1;
}

static int pat_find(lua_State *L)
{
    return find_or_match(L, true);
}

static int pat_match(lua_State *L)
{
    return find_or_match(L, false);
}

/* The iterator's position, kept in a userdata upvalue. Offsets rather than
 * pointers: no pointer into a string outlives the call that made it. */
struct gmatch_state {
    size_t next; /* where the next search starts */
    size_t last; /* end of the last match, SIZE_MAX before the first */
};

/* Upvalues: subject, pattern, struct gmatch_state, meter. An empty match
 * right where the previous match ended is skipped, so "a*" on "baa" yields
 * "", "aa", "" rather than looping. */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    struct pat_state ps;

    pat_init(&ps, L, meter_at(L, 4), s, ls, p, lp);
    for (size_t at = gm->next; at <= ls; at++) {
        pat_reset(&ps);
        const char *e = pat_do(&ps, s + at, p);
        if (e && (size_t)(e - s) != gm->last) {
            gm->next = gm->last = (size_t)(e - s);
            int n = push_captures(&ps, s + at, e);
            pat_flush(&ps);
            return n;
        }
    }
    pat_flush(&ps);
    return 0;
}

/* string.gmatch(s, pattern [, init]). '^' is an ordinary character here, as
 * in Lua: an anchor would stop the iteration after one match. */
static int pat_gmatch(lua_State *L)
{
    size_t ls, lp;
    luaL_checklstring(L, 1, &ls);
    luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;

    lua_settop(L, 2);
    struct gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    gm->next = init > ls ? ls + 1 : init;
    gm->last = SIZE_MAX;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, gmatch_next, 4);
    return 1;
}

/* Appends the replacement string (argument 3) for the match s..e: "%0" is
 * the match, "%1".."%9" captures, "%%" a percent sign. */
static void add_template(struct pat_state *ps, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = ps->L;
    size_t len;
    const char *t = lua_tolstring(L, 3, &len);
    const char *t_end = t + len, *pct;

    pat_tick(ps, 1);
    while ((pct = memchr(t, PAT_ESC, (size_t)(t_end - t))) != NULL) {
        luaL_addlstring(b, t, (size_t)(pct - t));
        int c = pct + 1 < t_end ? uc(pct[1]) : 0;
        if (c == PAT_ESC) {
            luaL_addchar(b, PAT_ESC);
        } else if (c == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (c >= '1' && c <= '9') {
            const char *text;
            ptrdiff_t n = capture_get(ps, c - '1', s, e, &text);
            if (n == CAP_POSITION)
                luaL_addvalue(b);
            else
                luaL_addlstring(b, text, (size_t)n);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", PAT_ESC);
        }
        pat_tick(ps, 1);
        t = pct + 2;
    }
    luaL_addlstring(b, t, (size_t)(t_end - t));
}

/* Appends the replacement for the match s..e; returns whether it differs
 * from the match (false/nil from a table or function keeps the match). */
static bool add_replacement(struct pat_state *ps, luaL_Buffer *b, const char *s, const char *e, int kind)
{
    lua_State *L = ps->L;

    switch (kind) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ps, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_capture(ps, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_template(ps, b, s, e);
        return true;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return false;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return true;
}

/* string.gsub(s, pattern, repl [, n]). */
static int pat_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    const char *last = NULL;
    bool anchor = lp > 0 && *p == '^', changed = false;
    lua_Integer n = 0;
    struct pat_state ps;
    luaL_Buffer b;

    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION || kind == LUA_TTABLE,
                     3, "string/function/table");
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    pat_init(&ps, L, meter_at(L, 1), src, ls, p, lp);
    while (n < max_n) {
        pat_reset(&ps);
        const char *e = pat_do(&ps, src, p);
        if (e && e != last) {
            n++;
            changed = add_replacement(&ps, &b, src, e, kind) || changed;
            src = last = e;
        } else if (src < ps.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    pat_flush(&ps);
    if (changed) {
        luaL_addlstring(&b, src, (size_t)(ps.src_end - src));
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, 1);
    }
    lua_pushinteger(L, n);
    return 2;
}

void otr_lua_pattern_install(lua_State *L, int lib, const struct otr_lua_pattern_meter *meter)
{
    static const luaL_Reg fns[] = {
        {"find", pat_find}, {"match", pat_match}, {"gmatch", pat_gmatch}, {"gsub", pat_gsub}, {NULL, NULL}};
    lua_pushvalue(L, lib);
    lua_pushlightuserdata(L, (void *)meter);
    luaL_setfuncs(L, fns, 1);
    lua_pop(L, 1);
}
