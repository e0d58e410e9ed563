/*
 * modules/mock/mock_json.c - a strict, bounded parser for incoming mock
 * events.
 *
 * It reads one JSON object of the shape the mock emits:
 *
 *   {"id":"...","type":"...","created":<int>,"data":{"provider_ref":...,
 *    "payment_id":...,"amount":<int>,"currency":...,"refund_ref":...,
 *    "refund_id":...,"failure_code":...,"failure_message":...}}
 *
 * Known members must have the right type (strings or null; non-negative
 * integers for created and amount); unknown members are any valid JSON and
 * are skipped, nested at most MOCK_JSON_DEPTH deep; a known member twice is
 * an error. Strings must be valid UTF-8 without \u0000. Nothing past `len`
 * is read: the body need not be NUL-terminated. The body is only parsed
 * after its signature is verified, but the parser assumes it is hostile.
 *
 * Why not jansson: a module links nothing but libc and the host, and this
 * is the only JSON the mock reads.
 */
#include "mock.h"

#include <string.h>

#define MOCK_JSON_DEPTH 16
#define MOCK_JSON_STR_MAX 4096
#define MOCK_JSON_KEY_MAX 256

typedef struct mock_jp {
    const char *p;
    const char *end;
} mock_jp;

static int mock_jp_peek(mock_jp *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static int mock_jp_eat(mock_jp *j, char c)
{
    if (mock_jp_peek(j) != (unsigned char)c)
        return -1;
    j->p++;
    return 0;
}

static int mock_jp_literal(mock_jp *j, const char *lit)
{
    size_t n = strlen(lit);

    mock_jp_peek(j);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

static int mock_jp_hex4(const char *s, const char *end, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (end - s < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = s[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at `s`, or 0 (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
static size_t mock_utf8_len(const unsigned char *s, const unsigned char *end)
{
    size_t need, i;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if ((size_t)(end - s) < need)
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

/*
 * Decode the string at j->p. With `out` NULL it only validates. Either way
 * the decoded length must stay below `cap` (out has `cap` bytes). Returns
 * the decoded length, or -1 on any syntax error or overflow.
 */
static long mock_jp_string(mock_jp *j, char *out, size_t cap)
{
    size_t n = 0;

    if (mock_jp_peek(j) != '"')
        return -1;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        char tmp[4];
        size_t tn = 1;

        if (c == '"') {
            j->p++;
            if (out != NULL)
                out[n] = '\0';
            return (long)n;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            unsigned cp;

            if (j->end - j->p < 2)
                return -1;
            c = (unsigned char)j->p[1];
            j->p += 2;
            switch (c) {
            case '"': tmp[0] = '"'; break;
            case '\\': tmp[0] = '\\'; break;
            case '/': tmp[0] = '/'; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u':
                if (mock_jp_hex4(j->p, j->end, &cp) != 0)
                    return -1;
                j->p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned low;

                    if (j->end - j->p < 6 || j->p[0] != '\\' ||
                        j->p[1] != 'u' ||
                        mock_jp_hex4(j->p + 2, j->end, &low) != 0 ||
                        low < 0xdc00 || low > 0xdfff)
                        return -1;
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return -1;
                }
                if (cp == 0)
                    return -1;
                if (cp < 0x80) {
                    tmp[0] = (char)cp;
                } else if (cp < 0x800) {
                    tmp[0] = (char)(0xc0 | (cp >> 6));
                    tmp[1] = (char)(0x80 | (cp & 0x3f));
                    tn = 2;
                } else if (cp < 0x10000) {
                    tmp[0] = (char)(0xe0 | (cp >> 12));
                    tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[2] = (char)(0x80 | (cp & 0x3f));
                    tn = 3;
                } else {
                    tmp[0] = (char)(0xf0 | (cp >> 18));
                    tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[3] = (char)(0x80 | (cp & 0x3f));
                    tn = 4;
                }
                break;
            default:
                return -1;
            }
            if (n + tn >= cap)
                return -1;
            if (out != NULL)
                memcpy(out + n, tmp, tn);
            n += tn;
            continue;
        }
        tn = mock_utf8_len((const unsigned char *)j->p,
                           (const unsigned char *)j->end);
        if (tn == 0 || n + tn >= cap)
            return -1;
        if (out != NULL)
            memcpy(out + n, j->p, tn);
        n += tn;
        j->p += tn;
    }
    return -1;
}

/* A string member into the arena (or NULL for JSON null). 0 or -1. */
static int mock_jp_string_or_null(mock_jp *j, const payd_host *h,
                                  payd_arena *a, size_t max, const char **out)
{
    const char *start;
    long n;
    char *s;

    if (mock_jp_peek(j) == 'n') {
        *out = NULL;
        return mock_jp_literal(j, "null");
    }
    start = j->p;
    n = mock_jp_string(j, NULL, max + 1);
    if (n < 0)
        return -1;
    s = h->alloc(a, (size_t)n + 1);
    if (s == NULL)
        return -1;
    j->p = start;
    if (mock_jp_string(j, s, (size_t)n + 1) != n)
        return -1;
    *out = s;
    return 0;
}

/* A non-negative integer without fraction or exponent, or null (-1). */
static int mock_jp_count(mock_jp *j, int64_t *out)
{
    int64_t v = 0;
    const char *start;
    int c = mock_jp_peek(j);

    if (c == 'n') {
        *out = -1;
        return mock_jp_literal(j, "null");
    }
    if (c < '0' || c > '9')
        return -1;
    start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*j->p - '0');
        j->p++;
    }
    if (j->p - start > 1 && *start == '0')
        return -1;
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return -1;
    *out = v;
    return 0;
}

static int mock_jp_digits(mock_jp *j)
{
    const char *start = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start ? 0 : -1;
}

/* Any JSON number, per RFC 8259. */
static int mock_jp_skip_number(mock_jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (mock_jp_digits(j) != 0)
        return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (mock_jp_digits(j) != 0)
            return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (mock_jp_digits(j) != 0)
            return -1;
    }
    return 0;
}

/* Skip any JSON value, nesting at most MOCK_JSON_DEPTH. 0 or -1. */
static int mock_jp_skip(mock_jp *j, int depth)
{
    int c = mock_jp_peek(j);

    if (depth > MOCK_JSON_DEPTH)
        return -1;
    switch (c) {
    case '{':
    case '[': {
        char close = c == '{' ? '}' : ']';

        j->p++;
        if (mock_jp_peek(j) == close) {
            j->p++;
            return 0;
        }
        for (;;) {
            if (c == '{' && (mock_jp_string(j, NULL, MOCK_JSON_STR_MAX) < 0 ||
                             mock_jp_eat(j, ':') != 0))
                return -1;
            if (mock_jp_skip(j, depth + 1) != 0)
                return -1;
            if (mock_jp_peek(j) == ',') {
                j->p++;
                continue;
            }
            return mock_jp_eat(j, close);
        }
    }
    case '"':
        return mock_jp_string(j, NULL, MOCK_JSON_STR_MAX) < 0 ? -1 : 0;
    case 't':
        return mock_jp_literal(j, "true");
    case 'f':
        return mock_jp_literal(j, "false");
    case 'n':
        return mock_jp_literal(j, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return mock_jp_skip_number(j);
        return -1;
    }
}

/* Known member names; a bit each, to refuse duplicates. */
enum {
    MOCK_F_ID = 1 << 0,
    MOCK_F_TYPE = 1 << 1,
    MOCK_F_CREATED = 1 << 2,
    MOCK_F_DATA = 1 << 3,
    MOCK_F_PROVIDER_REF = 1 << 4,
    MOCK_F_PAYMENT_ID = 1 << 5,
    MOCK_F_AMOUNT = 1 << 6,
    MOCK_F_CURRENCY = 1 << 7,
    MOCK_F_REFUND_REF = 1 << 8,
    MOCK_F_REFUND_ID = 1 << 9,
    MOCK_F_FAILURE_CODE = 1 << 10,
    MOCK_F_FAILURE_MESSAGE = 1 << 11
};

typedef struct mock_jp_ctx {
    mock_jp j;
    const payd_host *h;
    payd_arena *a;
    mock_json_event *ev;
    unsigned seen;
} mock_jp_ctx;

/* Mark `bit` seen; -1 if it already was. */
static int mock_jp_once(mock_jp_ctx *c, unsigned bit)
{
    if (c->seen & bit)
        return -1;
    c->seen |= bit;
    return 0;
}

/* One member of "data". 0 or -1. */
static int mock_jp_data_member(mock_jp_ctx *c, const char *key)
{
    static const struct {
        const char *name;
        unsigned bit;
        size_t offset;
        size_t max;
    } fields[] = {
        {"provider_ref", MOCK_F_PROVIDER_REF,
         offsetof(mock_json_event, provider_ref), 255},
        {"payment_id", MOCK_F_PAYMENT_ID,
         offsetof(mock_json_event, payment_id), 255},
        {"currency", MOCK_F_CURRENCY, offsetof(mock_json_event, currency), 16},
        {"refund_ref", MOCK_F_REFUND_REF,
         offsetof(mock_json_event, refund_ref), 255},
        {"refund_id", MOCK_F_REFUND_ID, offsetof(mock_json_event, refund_id),
         255},
        {"failure_code", MOCK_F_FAILURE_CODE,
         offsetof(mock_json_event, failure_code), 64},
        {"failure_message", MOCK_F_FAILURE_MESSAGE,
         offsetof(mock_json_event, failure_message), 1024},
    };
    size_t i;

    if (strcmp(key, "amount") == 0) {
        int64_t v;

        if (mock_jp_once(c, MOCK_F_AMOUNT) != 0 ||
            mock_jp_count(&c->j, &v) != 0)
            return -1;
        c->ev->amount = v < 0 ? 0 : v;
        return 0;
    }
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(key, fields[i].name) == 0) {
            const char **slot =
                (const char **)(void *)((char *)c->ev + fields[i].offset);

            if (mock_jp_once(c, fields[i].bit) != 0)
                return -1;
            return mock_jp_string_or_null(&c->j, c->h, c->a, fields[i].max,
                                          slot);
        }
    }
    return mock_jp_skip(&c->j, 2);
}

/* One member of the top-level object. 0 or -1. */
static int mock_jp_top_member(mock_jp_ctx *c, const char *key)
{
    char sub[MOCK_JSON_KEY_MAX];

    if (strcmp(key, "id") == 0)
        return mock_jp_once(c, MOCK_F_ID) != 0
                   ? -1
                   : mock_jp_string_or_null(&c->j, c->h, c->a, 255,
                                            &c->ev->id);
    if (strcmp(key, "type") == 0)
        return mock_jp_once(c, MOCK_F_TYPE) != 0
                   ? -1
                   : mock_jp_string_or_null(&c->j, c->h, c->a, 128,
                                            &c->ev->type);
    if (strcmp(key, "created") == 0)
        return mock_jp_once(c, MOCK_F_CREATED) != 0
                   ? -1
                   : mock_jp_count(&c->j, &c->ev->created);
    if (strcmp(key, "data") != 0)
        return mock_jp_skip(&c->j, 1);
    if (mock_jp_once(c, MOCK_F_DATA) != 0)
        return -1;
    if (mock_jp_peek(&c->j) == 'n')
        return mock_jp_literal(&c->j, "null");
    if (mock_jp_eat(&c->j, '{') != 0)
        return -1;
    if (mock_jp_peek(&c->j) == '}') {
        c->j.p++;
        return 0;
    }
    for (;;) {
        if (mock_jp_string(&c->j, sub, sizeof sub) < 0 ||
            mock_jp_eat(&c->j, ':') != 0 || mock_jp_data_member(c, sub) != 0)
            return -1;
        if (mock_jp_peek(&c->j) == ',') {
            c->j.p++;
            continue;
        }
        return mock_jp_eat(&c->j, '}');
    }
}

/* An event id: 1 to 255 printable ASCII characters, no spaces. */
static int mock_valid_event_id(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++, n++)
        if (*s <= ' ' || *s > '~')
            return 0;
    return n >= 1 && n <= 255;
}

/*
 * Parse an event body of `len` bytes into `ev` (strings in the arena).
 * Returns PAYD_OK, or PAYD_E_INVALID with e saying what is wrong (malformed
 * JSON, a known member of the wrong type or twice, no valid id or type).
 * Thread-safe.
 */
int mock_json_parse_event(const payd_host *h, payd_arena *a, const char *body,
                          size_t len, mock_json_event *ev, payd_error *e)
{
    mock_jp_ctx c;
    char key[MOCK_JSON_KEY_MAX];

    memset(ev, 0, sizeof *ev);
    ev->created = -1;
    memset(&c, 0, sizeof c);
    c.j.p = body;
    c.j.end = body + len;
    c.h = h;
    c.a = a;
    c.ev = ev;
    if (mock_jp_eat(&c.j, '{') != 0)
        goto malformed;
    if (mock_jp_peek(&c.j) == '}') {
        c.j.p++;
    } else {
        for (;;) {
            if (mock_jp_string(&c.j, key, sizeof key) < 0 ||
                mock_jp_eat(&c.j, ':') != 0 || mock_jp_top_member(&c, key) != 0)
                goto malformed;
            if (mock_jp_peek(&c.j) == ',') {
                c.j.p++;
                continue;
            }
            if (mock_jp_eat(&c.j, '}') != 0)
                goto malformed;
            break;
        }
    }
    if (mock_jp_peek(&c.j) != -1)
        goto malformed;
    if (!mock_valid_event_id(ev->id))
        return payd_fail(e, PAYD_E_INVALID, "event id is missing or invalid");
    if (ev->type == NULL || ev->type[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID, "event type is missing");
    return PAYD_OK;
malformed:
    return payd_fail(e, PAYD_E_INVALID,
                     "webhook body is not a well-formed mock event");
}
