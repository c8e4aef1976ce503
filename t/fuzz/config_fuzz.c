/*
 * libFuzzer target for the configuration layer: bytes are read as a config
 * file (otr_config_read_buffer), the role overlay is applied, and the result
 * is parsed against a table using every field type (nested objects, arrays
 * of objects and scalars, maps, per-role defaults, ${VAR} defaults). The raw
 * bytes also go straight to the scalar parsers. Everything allocated is
 * freed, so LeakSanitizer checks otr_conf_free as well.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore/include -Icore \
 *       $(pkg-config --cflags --libs jansson libuv lua5.4) t/fuzz/config_fuzz.c -o /tmp/config_fuzz
 */
#include "../../core/conf_describe.c"
#include "../../core/conf_schema.c"
#include "../../core/conf_values.c"
#include "../../core/config.c"
#include "../../core/diag.c"

#include <stdint.h>
#include <stdlib.h>

struct fz_item {
    char *name;
    struct otr_conf_address addr;
    uint64_t wait;
    struct otr_conf_map tags;
};
struct fz_inner {
    int64_t n;
    double x;
    struct otr_conf_array items; /* of struct fz_item */
};
struct fz_conf {
    bool b;
    int64_t i;
    double d;
    char *s;
    uint64_t dur;
    uint64_t size;
    int e;
    struct otr_conf_address a;
    struct fz_inner inner;
    struct otr_conf_array ints;  /* of int64_t */
    struct otr_conf_array durs;  /* of uint64_t */
    struct otr_conf_array addrs; /* of struct otr_conf_address */
    struct otr_conf_map m;
    char *req;
};

static const struct otr_conf_field fz_item_fields[] = {
    OTR_CONF_FIELD("name", OTR_CONF_STRING, struct fz_item, name, .flags = OTR_CONF_REQUIRED, .min = 1, .max = 32),
    OTR_CONF_FIELD("addr", OTR_CONF_ADDRESS, struct fz_item, addr, .def = "\"${FZ_HOST:-127.0.0.1}:0\""),
    OTR_CONF_FIELD("wait", OTR_CONF_DURATION, struct fz_item, wait, .def = "\"1s\""),
    OTR_CONF_FIELD("tags", OTR_CONF_MAP, struct fz_item, tags, .max = 8),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field fz_inner_fields[] = {
    OTR_CONF_FIELD("n", OTR_CONF_INT, struct fz_inner, n, .min = -5, .max = 5),
    OTR_CONF_FIELD("x", OTR_CONF_DOUBLE, struct fz_inner, x, .min = 1, .max = 0),
    OTR_CONF_FIELD("items", OTR_CONF_ARRAY, struct fz_inner, items, .fields = fz_item_fields,
                   .elem_size = sizeof(struct fz_item), .max = 64, .def = "[{\"name\": \"d\"}]"),
    OTR_CONF_TABLE_END,
};
static const struct otr_conf_field fz_int_elem = {.type = OTR_CONF_INT, .min = 0, .max = 100};
static const struct otr_conf_field fz_dur_elem = {.type = OTR_CONF_DURATION};
static const struct otr_conf_field fz_addr_elem = {.type = OTR_CONF_ADDRESS};
static const struct otr_conf_field fz_fields[] = {
    OTR_CONF_FIELD("b", OTR_CONF_BOOL, struct fz_conf, b, .def = "true"),
    OTR_CONF_FIELD("i", OTR_CONF_INT, struct fz_conf, i, .def_sidecar = "1", .def_node = "\"${FZ_I:-2}\""),
    OTR_CONF_FIELD("d", OTR_CONF_DOUBLE, struct fz_conf, d, .def = "0.5"),
    OTR_CONF_FIELD("s", OTR_CONF_STRING, struct fz_conf, s, .def = "\"$${x} ${FZ_S:-dflt}\"", .max = 64),
    OTR_CONF_FIELD("dur", OTR_CONF_DURATION, struct fz_conf, dur, .def = "\"250ms\"", .min = 1, .max = 86400000),
    OTR_CONF_FIELD("size", OTR_CONF_SIZE, struct fz_conf, size, .def = "\"64KiB\"", .min = 1, .max = 0),
    OTR_CONF_FIELD("e", OTR_CONF_ENUM, struct fz_conf, e, .def = "\"p2c\"", .choices = "round_robin|least_request|p2c"),
    OTR_CONF_FIELD("a", OTR_CONF_ADDRESS, struct fz_conf, a, .def_node = "\"[::1]:80\""),
    OTR_CONF_FIELD("inner", OTR_CONF_OBJECT, struct fz_conf, inner, .fields = fz_inner_fields),
    OTR_CONF_FIELD("ints", OTR_CONF_ARRAY, struct fz_conf, ints, .elem = &fz_int_elem, .elem_size = sizeof(int64_t)),
    OTR_CONF_FIELD("durs", OTR_CONF_ARRAY, struct fz_conf, durs, .elem = &fz_dur_elem, .elem_size = sizeof(uint64_t),
                   .min = 0, .max = 3),
    OTR_CONF_FIELD("addrs", OTR_CONF_ARRAY, struct fz_conf, addrs, .elem = &fz_addr_elem,
                   .elem_size = sizeof(struct otr_conf_address)),
    OTR_CONF_FIELD("m", OTR_CONF_MAP, struct fz_conf, m),
    OTR_CONF_FIELD("req", OTR_CONF_STRING, struct fz_conf, req, .flags = OTR_CONF_REQUIRED),
    OTR_CONF_TABLE_END,
};
static const char *const fz_allow[] = {"proxy", "logs", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("FZ_HOST", "10.0.0.1", 1);
    setenv("FZ_I", "42", 1);
    setenv("FZ_EMPTY", "", 1);
    setenv("A", "a", 1);
    return 0;
}

/* The scalar parsers see the raw bytes as one C string. */
static void fuzz_scalars(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t v;
    char err[256];
    otr_parse_duration(s, &v);
    otr_parse_size(s, &v);
    struct otr_conf_address a = {0};
    const char *why;
    if (otr_parse_address(s, &a, &why) == 0)
        otr_conf_address_free(&a);
    free(otr_env_expand(s, err, sizeof err));
    if (size < 64)
        otr_suggest(s, (const char *const[]){"address", "read_timeout", "x", NULL}, NULL);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct otr_diag d;
    fuzz_scalars(data, size);
    otr_diag_init(&d, "fuzz.conf");
    json_t *root = otr_config_read_buffer((const char *)data, size, &d);
    if (root != NULL) {
        enum otr_role role = size % 2 ? OTR_ROLE_NODE : OTR_ROLE_SIDECAR;
        struct fz_conf c;
        otr_config_merge_role(root, role, &d);
        memset(&c, 0, sizeof c);
        otr_conf_parse(fz_fields, root, &c, "", role, fz_allow, &d);
        otr_conf_free(fz_fields, &c);
        memset(&c, 0, sizeof c);
        otr_conf_parse(fz_fields, json_object_get(root, "proxy"), &c, "proxy", role, NULL, &d);
        otr_conf_free(fz_fields, &c);
        json_decref(root);
    }
    for (size_t i = 0; i < d.n; i++) {
        if (strchr(d.msgs[i], '\n') != NULL)
            abort(); /* one error, one line */
    }
    otr_diag_fini(&d);
    return 0;
}
