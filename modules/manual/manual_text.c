/*
 * modules/manual/manual_text.c - what the buyer reads: reference codes,
 * amounts and instructions.
 *
 * Everything here is a pure function of the instance's configuration and
 * its arguments (plus host randomness for references), so it runs on many
 * threads at once without locks.
 */
#include "manual.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const method_names[MANUAL_METHOD_COUNT] = {
    "bank_transfer", "cash_on_delivery", "cheque"};

const char *manual_method_name(int method)
{
    if (method < 0 || method >= MANUAL_METHOD_COUNT)
        return NULL;
    return method_names[method];
}

int manual_method_parse(const char *name)
{
    int i;

    if (name == NULL)
        return -1;
    for (i = 0; i < MANUAL_METHOD_COUNT; i++)
        if (strcmp(name, method_names[i]) == 0)
            return i;
    return -1;
}

/*
 * A reference is what the buyer copies into a bank form or writes on a
 * cheque, so it avoids symbols people confuse (0/O, 1/I) and is grouped.
 * 12 symbols of 32 are 60 random bits: a clash is vanishingly rare, and
 * payd's unique index on (gateway, provider_ref) refuses one anyway.
 * Each symbol takes 5 bits of one random byte, so every symbol is equally
 * likely.
 */
int manual_reference_new(const manual_instance *inst, char *out)
{
    uint8_t bytes[MANUAL_REF_GROUPS * MANUAL_REF_GROUP_LEN];
    size_t n, i, k = 0;
    int g;

    if (inst->h->random_bytes(bytes, sizeof bytes) != 0)
        return PAYD_E_INTERNAL;
    n = strlen(inst->prefix);
    memcpy(out, inst->prefix, n);
    for (g = 0; g < MANUAL_REF_GROUPS; g++) {
        out[n++] = '-';
        for (i = 0; i < MANUAL_REF_GROUP_LEN; i++)
            out[n++] = MANUAL_ALPHABET[bytes[k++] & 31];
    }
    out[n] = '\0';
    inst->h->cleanse(bytes, sizeof bytes);
    return PAYD_OK;
}

int manual_reference_valid(const manual_instance *inst, const char *ref)
{
    size_t n = strlen(inst->prefix);
    int g, i;

    if (ref == NULL || strncmp(ref, inst->prefix, n) != 0)
        return 0;
    ref += n;
    for (g = 0; g < MANUAL_REF_GROUPS; g++) {
        if (*ref++ != '-')
            return 0;
        for (i = 0; i < MANUAL_REF_GROUP_LEN; i++, ref++)
            if (*ref == '\0' || strchr(MANUAL_ALPHABET, *ref) == NULL)
                return 0;
    }
    return *ref == '\0';
}

int manual_format_amount(int64_t amount, const char *currency, int exponent,
                         char *out, size_t len)
{
    int64_t scale = 1;
    int i, w;

    if (amount < 0 || exponent < 0 || exponent > 4 || currency == NULL ||
        strlen(currency) != 3)
        return -1;
    for (i = 0; i < exponent; i++)
        scale *= 10;
    if (exponent == 0)
        w = snprintf(out, len, "%lld %s", (long long)amount, currency);
    else
        w = snprintf(out, len, "%lld.%0*lld %s", (long long)(amount / scale),
                     exponent, (long long)(amount % scale), currency);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

/*
 * The mod-97 check of ISO 13616: move the country code and check digits to
 * the end, read letters as 10..35, and the number must be 1 modulo 97. It
 * catches a mistyped IBAN in the config before buyers send money to it.
 */
int manual_iban_valid(const char *iban)
{
    char c[48];
    size_t n = 0, i;
    unsigned rem = 0;

    for (; *iban; iban++) {
        if (*iban == ' ')
            continue;
        if (!isalnum((unsigned char)*iban) || n >= 34)
            return 0;
        c[n++] = (char)toupper((unsigned char)*iban);
    }
    if (n < 15 || !isalpha((unsigned char)c[0]) ||
        !isalpha((unsigned char)c[1]) || !isdigit((unsigned char)c[2]) ||
        !isdigit((unsigned char)c[3]))
        return 0;
    for (i = 0; i < n; i++) {
        char ch = c[(i + 4) % n];
        if (isdigit((unsigned char)ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

/* Appends one line (printf-style) to *text in the arena; NULL on OOM. */
static char *append_line(const payd_host *h, payd_arena *a, char *text,
                         const char *line)
{
    if (text == NULL || line == NULL)
        return NULL;
    return h->sprintf(a, "%s%s%s", text, text[0] ? "\n" : "", line);
}

char *manual_instructions(const manual_instance *inst, int method,
                          const char *reference, int64_t amount,
                          const char *currency, int exponent,
                          int64_t created_at, payd_arena *a)
{
    static const char *const how[MANUAL_METHOD_COUNT] = {
        "by bank transfer", "in cash on delivery", "by cheque"};
    static const char *const quote[MANUAL_METHOD_COUNT] = {
        "quote it exactly as the transfer's reference",
        "the courier will ask for it",
        "write it on the back of the cheque"};
    const payd_host *h = inst->h;
    char money[64], date[16];
    char *t;

    if (manual_method_name(method) == NULL || reference == NULL ||
        manual_format_amount(amount, currency, exponent, money,
                             sizeof money) != 0)
        return NULL;
    t = h->strdup(a, "");
    t = append_line(h, a, t, h->sprintf(a, "Pay %s %s.", money, how[method]));
    t = append_line(h, a, t, h->sprintf(a, "Reference: %s (%s)", reference,
                                        quote[method]));
    if (method == MANUAL_BANK_TRANSFER) {
        if (inst->bank_account_name != NULL)
            t = append_line(h, a, t, h->sprintf(a, "Account name: %s",
                                                inst->bank_account_name));
        if (inst->bank_iban[0] != '\0')
            t = append_line(h, a, t,
                            h->sprintf(a, "IBAN: %s", inst->bank_iban));
        if (inst->bank_bic != NULL)
            t = append_line(h, a, t, h->sprintf(a, "BIC: %s", inst->bank_bic));
        if (inst->bank_name != NULL)
            t = append_line(h, a, t,
                            h->sprintf(a, "Bank: %s", inst->bank_name));
    }
    if (inst->text[method] != NULL)
        t = append_line(h, a, t, inst->text[method]);
    if (inst->auto_expire_days > 0 && created_at < 0) {
        t = append_line(h, a, t,
                        h->sprintf(a, "Unpaid %lld days after the payment was "
                                      "started, it is cancelled.",
                                   (long long)inst->auto_expire_days));
    } else if (inst->auto_expire_days > 0) {
        time_t until = (time_t)(created_at + inst->auto_expire_days * 86400);
        struct tm tm;
        if (gmtime_r(&until, &tm) == NULL ||
            strftime(date, sizeof date, "%Y-%m-%d", &tm) == 0)
            return NULL;
        t = append_line(h, a, t,
                        h->sprintf(a, "Unpaid by %s (UTC), the payment is "
                                      "cancelled.", date));
    }
    return t;
}
