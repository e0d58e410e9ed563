/*
 * payd/module_support.h - optional helpers for writing a payd module.
 *
 * Every module repeats the same few chores around the ABI: reading a
 * versioned request, writing a versioned result, filling a payd_error,
 * copying strings into the call's arena and reading strict integer keys
 * from its configuration section. This header does them once, the way
 * module.h's rules say, so a module does not carry its own copy.
 *
 * It is optional: nothing in the ABI refers to it, and a module that does
 * not include it loads and runs the same. It is header-only (every
 * function is `static inline`), so it adds no symbol to a module, no
 * library to link and nothing to the ABI: a module built with it is
 * binary-identical, as far as the host can tell, to one that wrote these
 * functions itself. It depends on nothing but payd/module.h and libc.
 *
 * Threads: every function here is stateless and may run on many threads
 * at once.
 */
#ifndef PAYD_MODULE_SUPPORT_H
#define PAYD_MODULE_SUPPORT_H

#include <payd/module.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define PAYD_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PAYD_PRINTF_LIKE(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Sets e->code to `code` and e->message to the formatted text (cut to fit),
 * and returns `code`, so an error path is one statement:
 *
 *     return payd_fail(e, PAYD_E_INVALID, "mymod: amount must be > 0");
 *
 * `e` may be NULL (nothing is written). The message is shown to operators
 * and kept in the audit: never format a secret, token or card number
 * into it. Leaves failure_code and provider_request_id alone.
 */
static inline int payd_fail(payd_error *e, int code, const char *fmt, ...)
    PAYD_PRINTF_LIKE(3, 4);

static inline int payd_fail(payd_error *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

/*
 * The host always passes a payd_error, but an operation that points a NULL
 * one at a scratch error never has to check again. Use it first thing in a
 * function whose error parameter is named `e`:
 *
 *     PAYD_ERROR_GUARD(e);
 *
 * It declares a local, so it may appear once per scope.
 */
#define PAYD_ERROR_GUARD(e)                                                   \
    payd_error payd_scratch_error_;                                           \
    if ((e) == NULL) {                                                        \
        memset(&payd_scratch_error_, 0, sizeof payd_scratch_error_);          \
        (e) = &payd_scratch_error_;                                           \
    }

/*
 * 1 when `s` holds a run of 12 or more digits, with spaces and dashes
 * between them allowed: anything that might be (part of) a card number.
 * A module checks a provider's message with it before putting the message
 * in a payd_error or a result, and says something generic instead.
 * 0 for NULL.
 */
static inline int payd_has_card_digits(const char *s)
{
    int run = 0;

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++) {
        if (*s >= '0' && *s <= '9') {
            if (++run >= 12)
                return 1;
        } else if (*s != ' ' && *s != '-') {
            run = 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Versioned structs across the ABI (module.h, "Versioning rules")          */
/* ------------------------------------------------------------------------ */

/*
 * Reads a request the host filled into the module's own copy `dst` of
 * `size` bytes (sizeof the struct this module was built against): the
 * bytes the host's struct_size covers are copied and the rest read as
 * zero, so a field an older host did not know is NULL/0, never read beyond
 * what it gave.
 *
 * Returns 0, or -1 when `src` is NULL or its struct_size covers no field
 * (a host bug: say so rather than fail later on "missing" fields). `dst`
 * is zeroed either way. Pointers inside stay borrowed from the host for
 * the call.
 */
static inline int payd_copy_in(void *dst, size_t size, const void *src)
{
    uint32_t n = 0;

    memset(dst, 0, size);
    if (src == NULL)
        return -1;
    memcpy(&n, src, sizeof n);
    if (n <= sizeof n)
        return -1;
    if (n > size)
        n = (uint32_t)size;
    memcpy(dst, src, n);
    return 0;
}

/*
 * Writes a result the module built in `src` (`size` bytes, sizeof the
 * struct it was built against) into the host's struct `dst`, whose
 * struct_size the host set to the size it allocated:
 *   - a host struct at least as big gets every field, and struct_size
 *     becomes `size`, which tells the host that fields past it (a newer
 *     minor's) are absent;
 *   - a smaller one (an older host) gets only the fields that fit inside
 *     it, and keeps its struct_size;
 *   - a struct_size of 0 is taken as a host that did not size the result
 *     and gets the whole struct (every host of this major knows the v1.0
 *     fields, and results have not grown since).
 * A NULL `dst` (a host that wants no result) is left alone. Every pointer
 * in `src` must already point into the call's arena or static storage.
 */
static inline void payd_copy_out(void *dst, const void *src, size_t size)
{
    uint32_t n = 0;
    uint32_t mine = (uint32_t)size;

    if (dst == NULL)
        return;
    memcpy(&n, dst, sizeof n);
    if (n != 0 && n < size) {
        if (n > sizeof n)
            memcpy((char *)dst + sizeof n, (const char *)src + sizeof n,
                   n - sizeof n);
        return;
    }
    memcpy(dst, src, size);
    memcpy(dst, &mine, sizeof mine);
}

/* ------------------------------------------------------------------------ */
/* The call's arena                                                         */
/* ------------------------------------------------------------------------ */

/*
 * An arena copy of `s` made with h->strdup, for a result field: NULL stays
 * NULL. When the copy fails, *oom is set to 1 (and never cleared), so a
 * function can copy every field and check once:
 *
 *     int oom = 0;
 *     out.provider_ref = payd_adup(h, a, id, &oom);
 *     out.next_action_url = payd_adup(h, a, url, &oom);
 *     if (oom) return payd_fail(e, PAYD_E_NOMEM, "mymod: out of memory");
 *
 * The copy belongs to the arena: the host frees it after the call.
 */
static inline const char *payd_adup(const payd_host *h, payd_arena *a,
                                    const char *s, int *oom)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = h->strdup(a, s);
    if (d == NULL)
        *oom = 1;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Checking host input before it goes to a provider                         */
/* ------------------------------------------------------------------------ */

/*
 * 1 for NULL (an optional field left out) or 1..max bytes without control
 * characters (below 0x20, and 0x7f); UTF-8 and spaces pass. 0 otherwise:
 * an empty string, a longer one, or one that could split a header line or
 * a log line.
 */
static inline int payd_text_ok(const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return 1;
    for (; *s != '\0'; s++, n++)
        if (n >= max || (unsigned char)*s < ' ' || *s == 0x7f)
            return 0;
    return n > 0;
}

/* 1 for three upper-case ASCII letters (the shape of an ISO 4217 code;
 * whether payd knows the currency is the core's business). */
static inline int payd_currency_ok(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' &&
           s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

/* ------------------------------------------------------------------------ */
/* Configuration keys (read in init, which runs alone)                      */
/* ------------------------------------------------------------------------ */

/*
 * Reads the integer key `key` of the instance's section: 1 to 12 decimal
 * digits (no sign, no spaces, no suffix) whose value lies in [min, max]
 * (min >= 0). *out is `def` when the key is absent. Reading the key marks
 * it known to the host, which reports keys nobody read.
 *
 * Returns PAYD_OK, or PAYD_E_INVALID with the message
 * "<module>: invalid value for <key>: expected an integer from <min> to
 * <max>", `module` being the module's name as operators know it.
 */
static inline int payd_conf_int(const payd_host *h, const payd_config *cfg,
                                const char *key, int64_t def, int64_t min,
                                int64_t max, int64_t *out, payd_error *e,
                                const char *module)
{
    const char *v = h->config_get(cfg, key);
    int64_t n = 0;
    size_t i, len;

    *out = def;
    if (v == NULL)
        return PAYD_OK;
    len = strlen(v);
    if (len == 0 || len > 12)
        goto bad;
    for (i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            goto bad;
        n = n * 10 + (v[i] - '0');
    }
    if (n < min || n > max)
        goto bad;
    *out = n;
    return PAYD_OK;
bad:
    return payd_fail(e, PAYD_E_INVALID,
                     "%s: invalid value for %s: expected an integer from "
                     "%lld to %lld",
                     module, key, (long long)min, (long long)max);
}

/*
 * 1 when `s` is 1..max bytes of printable ASCII other than space: what an
 * API key, client id or URL from the configuration must look like before
 * it goes into a header or a request line. 0 otherwise (and for NULL).
 */
static inline int payd_conf_token(const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++, n++)
        if (n >= max || *s <= ' ' || *s > '~')
            return 0;
    return n > 0;
}

#ifdef __cplusplus
}
#endif

#endif /* PAYD_MODULE_SUPPORT_H */
