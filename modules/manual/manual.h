/*
 * modules/manual/manual.h - the manual gateway's shared declarations.
 *
 * Bank transfer, cash on delivery and cheque: no provider, no network. The
 * module turns a payment into instructions for the buyer (a reference code,
 * the amount, bank details or text from config); payd keeps the payment
 * awaiting funds until an admin approves or rejects it. Like every module
 * it holds no business state: an instance is its configuration only.
 */
#ifndef PAYD_MANUAL_H
#define PAYD_MANUAL_H

#include <payd/module.h>
#include <payd/module_support.h>

#include <stddef.h>
#include <stdint.h>

/* The methods, in the order the config key `methods` may name them. */
enum manual_method {
    MANUAL_BANK_TRANSFER = 0,
    MANUAL_CASH_ON_DELIVERY = 1,
    MANUAL_CHEQUE = 2,
    MANUAL_METHOD_COUNT = 3
};

/* Reference codes: PREFIX-XXXX-XXXX-XXXX in an alphabet without 0/O, 1/I. */
#define MANUAL_PREFIX_MAX 8
#define MANUAL_REF_GROUPS 3
#define MANUAL_REF_GROUP_LEN 4
#define MANUAL_REF_MAX (MANUAL_PREFIX_MAX + MANUAL_REF_GROUPS * (MANUAL_REF_GROUP_LEN + 1) + 1)
#define MANUAL_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ" /* 32 symbols */

/* One configured instance: read in init, read-only afterwards. */
typedef struct manual_instance {
    const payd_host *h;
    int enabled[MANUAL_METHOD_COUNT];
    char prefix[MANUAL_PREFIX_MAX + 1];
    int64_t auto_expire_days;        /* 0 = never */
    /* Borrowed from the host's config (valid until fini); NULL when unset. */
    const char *bank_account_name;
    char bank_iban[48];              /* grouped by 4 for display; "" = unset */
    const char *bank_bic;
    const char *bank_name;
    const char *text[MANUAL_METHOD_COUNT]; /* instructions.<method> */
} manual_instance;

/* "bank_transfer", ... for a method; NULL out of range. */
const char *manual_method_name(int method);
/* The method called `name`, or -1. */
int manual_method_parse(const char *name);

/* Writes a fresh reference code "PREFIX-XXXX-XXXX-XXXX" into out
 * (MANUAL_REF_MAX bytes) from host random bytes. PAYD_OK or
 * PAYD_E_INTERNAL when no randomness is available. Thread-safe. */
int manual_reference_new(const manual_instance *inst, char *out);
/* 1 when `ref` has the shape this instance issues, 0 otherwise. */
int manual_reference_valid(const manual_instance *inst, const char *ref);

/* "12.50 USD" (amount in minor units, exponent 0..4) into out; -1 when it
 * does not fit or the input is out of range. */
int manual_format_amount(int64_t amount, const char *currency, int exponent,
                         char *out, size_t len);

/* The buyer's instructions for `method` (arena string), or NULL on OOM
 * or bad input. `created_at` (unix seconds) dates the expiry line; -1
 * (not known: confirm, retrieve) names the delay instead of a date. */
char *manual_instructions(const manual_instance *inst, int method,
                          const char *reference, int64_t amount,
                          const char *currency, int exponent,
                          int64_t created_at, payd_arena *a);

/* 1 when `iban` is a well-formed IBAN (spaces allowed, mod-97 check). */
int manual_iban_valid(const char *iban);

#endif /* PAYD_MANUAL_H */
