/*
 * proxy_h1_parse: a strict, incremental, zero-copy HTTP/1.1 message parser
 * (RFC 9112) for requests and responses, and an incremental chunked-body
 * decoder.
 *
 * Zero-copy. The head parser never copies: the start line and every field
 * are recorded as offsets into the caller's buffer, which must hold the
 * message head contiguously from its first byte (the caller may move the
 * buffer between calls; offsets stay valid). The chunked decoder returns
 * payload as slices of the buffer it was handed.
 *
 * Incremental. proxy_h1_head_parse() is called again with the same (grown)
 * buffer whenever more bytes arrived; it resumes where it stopped and looks
 * at every byte once, so a head delivered one byte at a time costs the same
 * as one delivered whole, and the outcome never depends on how it was split.
 *
 * Strictness (each case is a distinct error, see enum proxy_h1_error):
 * - lines end in CRLF only. A bare LF is rejected (RFC 9112 2.2 allows a
 *   recipient to accept one; we do not, because a peer that disagrees about
 *   line ends is how requests get smuggled). A CR anywhere but before LF is
 *   rejected (bare CR).
 * - obs-fold, whitespace between a field name and its colon, whitespace
 *   before the first field line, non-token characters in names and methods,
 *   control characters (other than HTAB) in values, and non-ASCII bytes in
 *   the request target are rejected.
 * - Content-Length must be one run of 1..18 digits and appear once; any
 *   second Content-Length (even an identical one) is rejected. A request
 *   carrying both Content-Length and Transfer-Encoding is rejected; so is a
 *   Transfer-Encoding whose last coding is not "chunked", one naming
 *   chunked twice, one with empty list elements, and any Transfer-Encoding
 *   in an HTTP/1.0 request.
 * - HTTP/1.1 requests need exactly one valid Host; more than one is
 *   rejected. Only HTTP/1.0 and HTTP/1.1 are accepted (505 otherwise).
 * - Size limits (struct proxy_h1_limits): the start line (414 for a request,
 *   since it is the target that grows), the whole head (431), the number of
 *   fields (431), chunk extensions and trailers.
 *
 * Not thread-safe per object; objects are independent.
 */
#ifndef OUTRIDER_PROXY_H1_PARSE_H
#define OUTRIDER_PROXY_H1_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The fixed capacity of the per-message field table; limits.max_fields may
 * be lower, never higher. */
#define PROXY_H1_FIELDS_CAP 128

enum proxy_h1_error {
    PROXY_H1_OK = 0,
    PROXY_H1_E_BARE_CR = -1,          /* CR not followed by LF */
    PROXY_H1_E_BARE_LF = -2,          /* LF not preceded by CR */
    PROXY_H1_E_METHOD = -3,           /* empty method or non-token character */
    PROXY_H1_E_TARGET = -4,           /* bad request target */
    PROXY_H1_E_VERSION = -5,          /* malformed HTTP-version */
    PROXY_H1_E_VERSION_UNSUPPORTED = -6, /* well-formed, but not 1.0 or 1.1 (505) */
    PROXY_H1_E_START_LINE = -7,       /* wrong spacing or junk in the start line */
    PROXY_H1_E_STATUS = -8,           /* status code not 3 digits 100..999 */
    PROXY_H1_E_FIELD_NAME = -9,       /* empty name or non-token character */
    PROXY_H1_E_WS_BEFORE_COLON = -10, /* "Name : value" */
    PROXY_H1_E_NO_COLON = -11,        /* field line without a colon */
    PROXY_H1_E_FIELD_VALUE = -12,     /* control character in a value */
    PROXY_H1_E_OBS_FOLD = -13,        /* a field line continued by SP/HTAB */
    PROXY_H1_E_LEADING_WS = -14,      /* whitespace before the first field line */
    PROXY_H1_E_CONTENT_LENGTH = -15,  /* malformed or too large Content-Length */
    PROXY_H1_E_DUP_CONTENT_LENGTH = -16, /* more than one Content-Length */
    PROXY_H1_E_CL_AND_TE = -17,       /* both Content-Length and Transfer-Encoding */
    PROXY_H1_E_TRANSFER_ENCODING = -18, /* chunked not last, twice, or malformed */
    PROXY_H1_E_TE_HTTP10 = -19,       /* Transfer-Encoding in an HTTP/1.0 request */
    PROXY_H1_E_HOST = -20,            /* missing, repeated or malformed Host */
    PROXY_H1_E_START_LINE_TOO_LONG = -21, /* 414 for requests */
    PROXY_H1_E_HEAD_TOO_LARGE = -22,  /* 431 */
    PROXY_H1_E_TOO_MANY_FIELDS = -23, /* 431 */
    PROXY_H1_E_CHUNK_SIZE = -24,      /* empty, non-hex or too many digits */
    PROXY_H1_E_CHUNK_EXT = -25,       /* malformed chunk extension */
    PROXY_H1_E_CHUNK_EXT_TOO_LONG = -26,
    PROXY_H1_E_CHUNK_DATA_END = -27,  /* chunk data not followed by CRLF */
    PROXY_H1_E_TRAILER = -28,         /* malformed trailer field */
    PROXY_H1_E_TRAILER_TOO_LARGE = -29,
    PROXY_H1_E_TE_UNSUPPORTED = -30,  /* a transfer coding other than chunked (501) */
    PROXY_H1_E_CONNECTION = -31,      /* malformed Connection list */
};

/* Methods the proxy treats specially; the rest are PROXY_H1_M_OTHER. */
enum proxy_h1_method {
    PROXY_H1_M_OTHER = 0,
    PROXY_H1_M_GET,
    PROXY_H1_M_HEAD,
    PROXY_H1_M_POST,
    PROXY_H1_M_PUT,
    PROXY_H1_M_DELETE,
    PROXY_H1_M_OPTIONS,
    PROXY_H1_M_CONNECT,
    PROXY_H1_M_TRACE,
    PROXY_H1_M_PATCH,
};

enum proxy_h1_target_form {
    PROXY_H1_T_ORIGIN = 0, /* "/path?query" */
    PROXY_H1_T_ABSOLUTE,   /* "http://authority/path" */
    PROXY_H1_T_AUTHORITY,  /* "host:port", CONNECT only */
    PROXY_H1_T_ASTERISK,   /* "*", OPTIONS only */
};

/* How the body of a message is delimited. */
enum proxy_h1_framing {
    PROXY_H1_BODY_NONE = 0, /* no body at all */
    PROXY_H1_BODY_LENGTH,   /* exactly content_length bytes */
    PROXY_H1_BODY_CHUNKED,  /* chunked coding: use proxy_h1_chunked */
    PROXY_H1_BODY_CLOSE,    /* responses only: until the connection closes */
};

/* Fields the parser recognises by name (for framing, hop-by-hop handling
 * and routing). */
enum proxy_h1_field_id {
    PROXY_H1_F_OTHER = 0,
    PROXY_H1_F_HOST,
    PROXY_H1_F_CONTENT_LENGTH,
    PROXY_H1_F_TRANSFER_ENCODING,
    PROXY_H1_F_CONNECTION,
    PROXY_H1_F_KEEP_ALIVE,
    PROXY_H1_F_PROXY_CONNECTION,
    PROXY_H1_F_TE,
    PROXY_H1_F_UPGRADE,
    PROXY_H1_F_EXPECT,
    PROXY_H1_F_TRAILER,
    PROXY_H1_F_X_FORWARDED_FOR,
    PROXY_H1_F_VIA,
};

/* Message flags (proxy_h1_head.flags). */
enum proxy_h1_flags {
    PROXY_H1_CONN_CLOSE = 1u << 0,      /* Connection: close */
    PROXY_H1_CONN_KEEP_ALIVE = 1u << 1, /* Connection: keep-alive (HTTP/1.0) */
    PROXY_H1_CONN_UPGRADE = 1u << 2,    /* Connection: upgrade */
    PROXY_H1_EXPECT_CONTINUE = 1u << 3, /* Expect: 100-continue (HTTP/1.1 requests) */
    PROXY_H1_EXPECT_OTHER = 1u << 4,    /* any other expectation: answer 417 */
    PROXY_H1_TE_TRAILERS = 1u << 5,     /* TE: trailers (gRPC clients send it) */
    PROXY_H1_HAS_TE = 1u << 6,          /* a Transfer-Encoding field was seen */
    PROXY_H1_HAS_CL = 1u << 7,          /* a Content-Length field was seen */
};

/* Per-field flags (proxy_h1_field.flags). */
enum proxy_h1_field_flags {
    /* Hop-by-hop: a proxy must not forward it (RFC 9110 7.6.1), either
     * because it is one of the fixed connection-specific fields or because
     * the Connection field names it. */
    PROXY_H1_FIELD_HOP = 1u << 0,
};

/* A field line: name and value (without surrounding whitespace) as offsets
 * from the first byte of the message head. */
struct proxy_h1_field {
    uint32_t name_off, value_off;
    uint16_t name_len;
    uint8_t id;    /* enum proxy_h1_field_id */
    uint8_t flags; /* enum proxy_h1_field_flags */
    uint32_t value_len;
};

/* A span of the head: offset from its first byte, and length. */
struct proxy_h1_span {
    uint32_t off, len;
};

struct proxy_h1_limits {
    uint32_t max_start_line; /* bytes of the request or status line, CRLF included */
    uint32_t max_head;       /* bytes of the whole head, final CRLF included */
    uint32_t max_fields;     /* field lines per head (<= PROXY_H1_FIELDS_CAP) */
    uint32_t max_chunk_ext;  /* bytes of extensions on one chunk-size line */
    uint32_t max_trailers;   /* bytes of the trailer section */
};

/* Defaults: 8 KiB start line, 32 KiB head, 100 fields, 256 B of chunk
 * extensions, 8 KiB of trailers. */
extern const struct proxy_h1_limits proxy_h1_limits_default;

/* A parsed message head. All spans are offsets into the head's buffer. */
struct proxy_h1_head {
    /* request */
    struct proxy_h1_span method, target;
    uint8_t method_id;   /* enum proxy_h1_method */
    uint8_t target_form; /* enum proxy_h1_target_form */
    /* The authority the request is for: the absolute-form target's, else
     * Host's value (len 0 when an HTTP/1.0 request has none). */
    struct proxy_h1_span authority;
    /* The path (with query) of an absolute-form target; equal to target in
     * origin-form. */
    struct proxy_h1_span path;
    /* response */
    uint16_t status;
    struct proxy_h1_span reason;
    /* both */
    uint8_t version_minor; /* 0 or 1 */
    uint8_t framing;       /* enum proxy_h1_framing */
    uint32_t flags;        /* enum proxy_h1_flags */
    uint64_t content_length;
    uint32_t head_len; /* bytes of the head, final CRLF included */
    uint32_t n_fields;
    struct proxy_h1_field fields[PROXY_H1_FIELDS_CAP];
};

enum proxy_h1_kind {
    PROXY_H1_REQUEST = 0,
    PROXY_H1_RESPONSE,
};

/* The incremental head parser. Embed it; no allocation. */
struct proxy_h1_parser {
    struct proxy_h1_limits limits;
    uint8_t kind;            /* enum proxy_h1_kind */
    uint8_t req_method;      /* responses: the request's method (HEAD has no body) */
    uint8_t state;           /* enum proxy_h1_parser_state */
    uint32_t line_start;     /* offset of the line being parsed */
    uint32_t scan;           /* bytes already searched for LF */
    uint32_t err_off;        /* after an error: offset of the offending byte */
    uint32_t n_connection;   /* Connection fields seen (for the hop-by-hop pass) */
    uint32_t n_host;
    uint32_t err;            /* the error, once in error */
    bool conn_names;         /* Connection names other fields: mark them hop-by-hop */
    bool te_chunked;         /* "chunked" seen in Transfer-Encoding */
    struct proxy_h1_head head;
};

/* Parser states (proxy_h1_parser.state). */
enum proxy_h1_parser_state {
    PROXY_H1_PS_START = 0, /* before or inside the start line */
    PROXY_H1_PS_FIELDS,    /* inside the field section */
    PROXY_H1_PS_DONE,      /* the head is complete: p->head is valid */
    PROXY_H1_PS_ERROR,
};

/* Prepares p for a new message of kind. limits may be NULL (defaults). For
 * a response, req_method is the method of the request it answers. */
void proxy_h1_parser_init(struct proxy_h1_parser *p, enum proxy_h1_kind kind, const struct proxy_h1_limits *limits,
                          enum proxy_h1_method req_method);

/*
 * Parses the head in buf[0..len): the bytes of this message received so
 * far, starting with its first byte. Returns the head's length (> 0) once it
 * is complete (p->head is then filled, and the body or the next message
 * starts at that offset), 0 when more bytes are needed, or a negative
 * enum proxy_h1_error (p->err_off then points near the offending byte; the
 * parser stays in error). Bytes beyond the head are not looked at.
 */
int proxy_h1_head_parse(struct proxy_h1_parser *p, const char *buf, size_t len);

/* The HTTP status a server answers a request parse error with (400, 414,
 * 431, 505). */
int proxy_h1_error_status(int err);
/* A short English description of err, for logs ("bare LF in head"). */
const char *proxy_h1_error_str(int err);

/* Case-insensitive comparison of a span of buf with a NUL-terminated
 * lower-case name. */
bool proxy_h1_span_eq_lower(const char *buf, struct proxy_h1_span s, const char *lower);

/*
 * The chunked-body decoder. Feed it whatever bytes of the body arrived; it
 * keeps its own state between calls (nothing needs to stay in the buffer).
 */
struct proxy_h1_chunked {
    uint8_t state;      /* internal */
    uint8_t digits;     /* hex digits read in the current size */
    uint8_t quoted;     /* internal: inside a quoted-string extension value */
    uint8_t line_start; /* internal: at the start of a trailer line */
    uint64_t remaining; /* payload bytes left in the current chunk */
    uint32_t ext_len;   /* bytes of extensions on the current size line */
    uint32_t trailer_len;
    uint32_t max_chunk_ext, max_trailers;
};

/* One step's outcome: payload and/or the end of the body. */
struct proxy_h1_piece {
    const char *data; /* payload bytes inside the caller's buffer, or NULL */
    size_t len;
    /* Trailer-section bytes (field lines, validated, CRLF-terminated,
     * without the final empty line) inside the caller's buffer; may come in
     * several pieces. */
    const char *trailer;
    size_t trailer_len;
    bool done; /* the body's last byte was consumed */
};

void proxy_h1_chunked_init(struct proxy_h1_chunked *c, const struct proxy_h1_limits *limits);

/*
 * Decodes from buf[0..len). Returns the number of bytes consumed (possibly
 * fewer than len: it stops after each payload slice so the caller can
 * forward it, and at the end of the body, leaving the next message's bytes
 * untouched), or a negative enum proxy_h1_error. *out describes what the
 * consumed bytes carried. Call again with the rest.
 */
ssize_t proxy_h1_chunked_decode(struct proxy_h1_chunked *c, const char *buf, size_t len, struct proxy_h1_piece *out);

#endif
