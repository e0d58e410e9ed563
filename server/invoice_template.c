/*
 * invoice_template.c - the template engine for invoice HTML (the language
 * is described in invoice_template.h).
 *
 * A template is parsed once, at startup, into a flat list of nodes in
 * document order: text, value, section, inverted section. A section node
 * records where its body ends, so rendering and checking walk the list
 * recursively without building a tree of allocations. Syntax errors
 * (an unclosed tag, a mismatched or missing {{/name}}, a bad name) name
 * the file and line, and so does the check against the data's shape, so a
 * broken template stops `payd serve` and `payd check-config` rather than a
 * customer's invoice.
 *
 * Every value goes through html_escape on its way out; there is no way to
 * write raw HTML from data. After parsing a template is read-only, so
 * rendering needs no lock.
 */
#include "invoice_template.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NODE_TEXT, NODE_VALUE, NODE_SECTION, NODE_INVERTED } node_kind;

typedef struct tpl_node {
    node_kind kind;
    const char *start; /* text: into t->text; value/section: the name (in t->text, not terminated) */
    size_t len;
    int line;
    size_t end;        /* sections: index one past the last node of the body */
} tpl_node;

struct invoice_template {
    char *name;
    char *text;
    tpl_node *nodes;
    size_t count, cap;
};

static int tpl_error(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int tpl_error(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = line > 0 ? snprintf(err, errlen, "%s:%d: ", name, line) : snprintf(err, errlen, "%s: ", name);
    if (n < 0 || (size_t)n >= errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static tpl_node *node_add(invoice_template *t, node_kind kind, const char *start, size_t len, int line)
{
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tpl_node *n = realloc(t->nodes, cap * sizeof *n);
        if (!n) return NULL;
        t->nodes = n;
        t->cap = cap;
    }
    tpl_node *n = &t->nodes[t->count++];
    *n = (tpl_node){.kind = kind, .start = start, .len = len, .line = line, .end = 0};
    return n;
}

static int count_lines(const char *from, const char *to)
{
    int n = 0;
    for (const char *p = from; p < to; p++) n += *p == '\n';
    return n;
}

/* A name is "." or dot-separated words of letters, digits and '_'. */
static int name_valid(const char *s, size_t n)
{
    if (n == 1 && s[0] == '.') return 1;
    if (n == 0 || n > 128 || s[0] == '.' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!word && !(c == '.' && s[i + 1] != '.')) return 0;
    }
    return 1;
}

void invoice_template_free(invoice_template *t)
{
    if (!t) return;
    free(t->name);
    free(t->text);
    free(t->nodes);
    free(t);
}

/*
 * One pass over the text: everything outside {{...}} becomes a text node
 * (pointing into the template's own copy), every tag a node. Open sections
 * are kept on a small stack; the close tag must name the innermost one,
 * and records where its body ends. Errors stop at the first problem, with
 * its line.
 */
int invoice_template_parse(const char *text, size_t len, const char *name, invoice_template **out,
                           char *err, size_t errlen)
{
    *out = NULL;
    if (len > INVOICE_TEMPLATE_MAX_BYTES)
        return tpl_error(err, errlen, name, 0, "template is larger than %d bytes", INVOICE_TEMPLATE_MAX_BYTES);
    if (memchr(text, '\0', len)) return tpl_error(err, errlen, name, 0, "template contains a NUL byte");
    invoice_template *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name)) || !(t->text = malloc(len + 1))) {
        invoice_template_free(t);
        return tpl_error(err, errlen, name, 0, "out of memory");
    }
    memcpy(t->text, text, len);
    t->text[len] = '\0';

    size_t open[INVOICE_TEMPLATE_MAX_DEPTH]; /* node indexes of the open sections */
    int depth = 0, line = 1;
    const char *p = t->text, *end = t->text + len;
    while (p < end) {
        const char *tag = strstr(p, "{{");
        const char *text_end = tag ? tag : end;
        if (text_end > p && !node_add(t, NODE_TEXT, p, (size_t)(text_end - p), line)) goto nomem;
        line += count_lines(p, text_end);
        if (!tag) break;
        const char *close = strstr(tag + 2, "}}");
        if (!close) {
            tpl_error(err, errlen, name, line, "'{{' is never closed with '}}'");
            goto fail;
        }
        const char *nl = memchr(tag, '\n', (size_t)(close - tag));
        const char *in = tag + 2, *in_end = close;
        p = close + 2;
        if (*in == '!') { /* comment: may span lines */
            line += count_lines(tag, p);
            continue;
        }
        if (nl) {
            tpl_error(err, errlen, name, line, "a tag must not span lines");
            goto fail;
        }
        char sigil = *in;
        if (sigil == '#' || sigil == '^' || sigil == '/') in++;
        while (in < in_end && *in == ' ') in++;
        while (in_end > in && in_end[-1] == ' ') in_end--;
        size_t n = (size_t)(in_end - in);
        if (!name_valid(in, n)) {
            tpl_error(err, errlen, name, line, "invalid placeholder {{%.*s}}: use names like order.number",
                      (int)(close - tag - 2 > 60 ? 60 : close - tag - 2), tag + 2);
            goto fail;
        }
        if (sigil == '/') {
            if (depth == 0) {
                tpl_error(err, errlen, name, line, "{{/%.*s}} closes a section that was never opened", (int)n, in);
                goto fail;
            }
            tpl_node *o = &t->nodes[open[depth - 1]];
            if (o->len != n || memcmp(o->start, in, n) != 0) {
                tpl_error(err, errlen, name, line, "{{/%.*s}} does not close {{%c%.*s}} opened at line %d", (int)n,
                          in, o->kind == NODE_SECTION ? '#' : '^', (int)o->len, o->start, o->line);
                goto fail;
            }
            o->end = t->count;
            depth--;
            continue;
        }
        if (sigil == '#' || sigil == '^') {
            if (n == 1 && in[0] == '.') {
                tpl_error(err, errlen, name, line, "a section needs a name, not '.'");
                goto fail;
            }
            if (depth == INVOICE_TEMPLATE_MAX_DEPTH) {
                tpl_error(err, errlen, name, line, "sections are nested deeper than %d", INVOICE_TEMPLATE_MAX_DEPTH);
                goto fail;
            }
            if (!node_add(t, sigil == '#' ? NODE_SECTION : NODE_INVERTED, in, n, line)) goto nomem;
            open[depth++] = t->count - 1;
            continue;
        }
        if (!node_add(t, NODE_VALUE, in, n, line)) goto nomem;
    }
    if (depth > 0) {
        tpl_node *o = &t->nodes[open[depth - 1]];
        tpl_error(err, errlen, name, o->line, "{{%c%.*s}} is never closed with {{/%.*s}}",
                  o->kind == NODE_SECTION ? '#' : '^', (int)o->len, o->start, (int)o->len, o->start);
        goto fail;
    }
    *out = t;
    return 0;
nomem:
    tpl_error(err, errlen, name, 0, "out of memory");
fail:
    invoice_template_free(t);
    return -1;
}

int invoice_template_load(const char *path, invoice_template **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return tpl_error(err, errlen, path, 0, "cannot read the template: %s", strerror(errno));
    char *buf = malloc(INVOICE_TEMPLATE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return tpl_error(err, errlen, path, 0, "out of memory");
    }
    size_t n = fread(buf, 1, INVOICE_TEMPLATE_MAX_BYTES + 1, f);
    int failed = ferror(f);
    fclose(f);
    int rc = failed ? tpl_error(err, errlen, path, 0, "cannot read the template")
                    : invoice_template_parse(buf, n, path, out, err, errlen);
    free(buf);
    return rc;
}

/* --- name lookup ------------------------------------------------------ */

/* The scopes a name is looked up in, innermost last. */
typedef struct scope {
    json_t *v[INVOICE_TEMPLATE_MAX_DEPTH + 1];
    int n;
} scope;

/* Resolves a dotted name: the first part in the innermost scope that has
 * it, the rest inside that. NULL when it does not resolve. */
static json_t *lookup(const scope *s, const char *name, size_t len)
{
    if (len == 1 && name[0] == '.') return s->v[s->n - 1];
    size_t first = 0;
    while (first < len && name[first] != '.') first++;
    char key[129];
    json_t *v = NULL;
    memcpy(key, name, first);
    key[first] = '\0';
    for (int i = s->n - 1; i >= 0 && !v; i--)
        if (json_is_object(s->v[i])) v = json_object_get(s->v[i], key);
    size_t at = first;
    while (v && at < len) {
        size_t from = at + 1, to = from;
        while (to < len && name[to] != '.') to++;
        memcpy(key, name + from, to - from);
        key[to - from] = '\0';
        v = json_is_object(v) ? json_object_get(v, key) : NULL;
        at = to;
    }
    return v;
}

static int truthy(json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v)) return 0;
    if (json_is_string(v)) return json_string_length(v) > 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    return 1;
}

/* --- checking --------------------------------------------------------- */

/* Resolves every name in nodes [from, to) against the shape, entering
 * sections with the first sample element of a list (or the value itself). */
static int check_range(const invoice_template *t, size_t from, size_t to, scope *s, char *err, size_t errlen)
{
    for (size_t i = from; i < to; i++) {
        const tpl_node *n = &t->nodes[i];
        if (n->kind == NODE_TEXT) continue;
        json_t *v = lookup(s, n->start, n->len);
        if (!v)
            return tpl_error(err, errlen, t->name, n->line, "unknown placeholder {{%s%.*s}}",
                             n->kind == NODE_SECTION ? "#" : n->kind == NODE_INVERTED ? "^" : "", (int)n->len,
                             n->start);
        if (n->kind == NODE_VALUE) continue;
        json_t *inner = json_is_array(v) ? json_array_get(v, 0) : v;
        if (!inner) inner = json_null();
        s->v[s->n++] = inner;
        int rc = check_range(t, i + 1, n->end, s, err, errlen);
        s->n--;
        if (rc) return rc;
        i = n->end - 1;
    }
    return 0;
}

int invoice_template_check(const invoice_template *t, json_t *shape, char *err, size_t errlen)
{
    scope s = {.v = {shape}, .n = 1};
    return check_range(t, 0, t->count, &s, err, errlen);
}

/* --- rendering -------------------------------------------------------- */

typedef struct outbuf {
    char *data;
    size_t len, cap;
    int failed;
} outbuf;

static void out_put(outbuf *b, const char *s, size_t n)
{
    if (b->failed || n == 0) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Writes `s` with the five characters that matter in HTML text and in
 * quoted attribute values replaced by entities. */
static void html_escape(outbuf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ent = NULL;
        switch (s[i]) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: continue;
        }
        out_put(b, s + run, i - run);
        out_put(b, ent, strlen(ent));
        run = i + 1;
    }
    out_put(b, s + run, n - run);
}

static void render_value(outbuf *b, json_t *v)
{
    char num[32];
    if (json_is_string(v)) {
        html_escape(b, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        int n = snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        out_put(b, num, (size_t)n);
    } else if (json_is_boolean(v)) {
        out_put(b, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5);
    }
}

/* Renders nodes [from, to) with the scopes in s; a section's body is
 * rendered by recursion, with the element pushed as the innermost scope.
 * Depth is bounded by INVOICE_TEMPLATE_MAX_DEPTH (checked at parse). */
static void render_range(const invoice_template *t, size_t from, size_t to, scope *s, outbuf *b)
{
    for (size_t i = from; i < to && !b->failed; i++) {
        const tpl_node *n = &t->nodes[i];
        if (n->kind == NODE_TEXT) {
            out_put(b, n->start, n->len);
            continue;
        }
        json_t *v = lookup(s, n->start, n->len);
        if (n->kind == NODE_VALUE) {
            render_value(b, v);
            continue;
        }
        if (n->kind == NODE_INVERTED) {
            if (!truthy(v)) render_range(t, i + 1, n->end, s, b);
        } else if (json_is_array(v)) {
            for (size_t k = 0; k < json_array_size(v); k++) {
                s->v[s->n++] = json_array_get(v, k);
                render_range(t, i + 1, n->end, s, b);
                s->n--;
            }
        } else if (truthy(v)) {
            s->v[s->n++] = v;
            render_range(t, i + 1, n->end, s, b);
            s->n--;
        }
        i = n->end - 1;
    }
}

int invoice_template_render(const invoice_template *t, json_t *data, char **out, size_t *len)
{
    outbuf b = {0};
    scope s = {.v = {data}, .n = 1};
    out_put(&b, "", 0);
    render_range(t, 0, t->count, &s, &b);
    if (!b.failed && !b.data) b.data = calloc(1, 1);
    if (b.failed || !b.data) {
        free(b.data);
        *out = NULL;
        *len = 0;
        return -1;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
