/*
 * modules/stripe/stripe.h - declarations shared by the files of the Stripe
 * gateway.
 *
 * The module speaks Stripe's REST API (form-encoded requests, JSON
 * answers) through the host's HTTP client, and verifies Stripe's signed
 * webhooks. Its files, one concern each:
 *   stripe.c           descriptor, configuration, init/fini, public_info
 *   stripe_abi.c       ABI plumbing: copying requests in and results out,
 *                      errors, arena copies, id checks
 *   stripe_form.c      application/x-www-form-urlencoded bodies with
 *                      Stripe's nested keys (metadata[k], list[])
 *   stripe_api.c       one API call: headers, Idempotency-Key, the call,
 *                      Request-Id, parsing the answer
 *   stripe_errors.c    Stripe errors to PAYD_E codes, decline codes to
 *                      payd's failure codes, safe messages
 *   stripe_json.c      small typed accessors over jansson values
 *   stripe_raw.c       the redacted copy of a provider object for the audit
 *   stripe_intents.c   PaymentIntents: create, confirm, capture, cancel,
 *                      retrieve, and the status mapping
 *   stripe_refunds.c   Refunds: create and retrieve
 *   stripe_methods.c   Customers and PaymentMethods (saved methods)
 *   stripe_signature.c the Stripe-Signature header: strict parsing and
 *                      constant-time verification
 *   stripe_webhook.c   the webhook operation: verify, then map the event
 *
 * Nothing here is exported from the shared object: it is built with
 * -fvisibility=hidden and only payd_module_v1 is marked PAYD_EXPORT.
 * Every operation may run on many threads at once with one instance; an
 * instance is immutable after init.
 */
#ifndef PAYD_STRIPE_H
#define PAYD_STRIPE_H

#include <payd/module.h>
#include <payd/module_support.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define STRIPE_VERSION "1.0.0"

#define STRIPE_DEFAULT_API_BASE "https://api.stripe.com"
#define STRIPE_DEFAULT_API_VERSION "2024-06-20"

/* Input bounds. */
#define STRIPE_AMOUNT_MAX 99999999999LL  /* Stripe's own upper bound */
#define STRIPE_ID_MAX 255                /* provider ids, payd ids */
#define STRIPE_KEY_MAX 255               /* Idempotency-Key, Stripe's limit */
#define STRIPE_URL_MAX 2048
#define STRIPE_TEXT_MAX 1000             /* description */
#define STRIPE_MAX_WEBHOOK_SECRETS 8
#define STRIPE_WEBHOOK_BODY_MAX (1024 * 1024)
#define STRIPE_RAW_MAX (64 * 1024)       /* larger raw objects are summarized */

/* ------------------------------------------------------------------------ */
/* The instance (stripe.c)                                                  */
/* ------------------------------------------------------------------------ */

/* One configured instance. Immutable after init, so ops read it freely.
 * Secrets live in malloc'd memory that fini wipes. */
typedef struct stripe_instance {
    const payd_host *h;
    char *name;                    /* payd.instance, for messages */
    char *secret_key;              /* never logged, never returned */
    size_t secret_key_len;
    char *publishable_key;         /* or NULL */
    char *public_info;             /* JSON object text for GET /v1/gateways */
    char *webhook_secrets[STRIPE_MAX_WEBHOOK_SECRETS];
    size_t webhook_secret_lens[STRIPE_MAX_WEBHOOK_SECRETS];
    size_t webhook_secret_count;   /* 0: every webhook is refused */
    char *api_base;                /* without a trailing '/' */
    char *api_version;             /* sent as Stripe-Version */
    int64_t tolerance_s;           /* webhook timestamp tolerance */
    long timeout_ms;               /* 0 = the host's default */
    char *statement_descriptor_suffix; /* default for payments, or NULL */
    int automatic_payment_methods; /* 1: automatic_payment_methods[enabled] */
} stripe_instance;

/* ------------------------------------------------------------------------ */
/* stripe_abi.c                                                             */
/* ------------------------------------------------------------------------ */

/* Copying requests and results across the ABI, errors (payd_fail,
 * PAYD_ERROR_GUARD), arena copies (payd_adup) and the text and currency
 * checks (payd_text_ok, payd_currency_ok) come from payd/module_support.h. */

/* 1 when `s` looks like a Stripe object id: 1..STRIPE_ID_MAX characters of
 * [A-Za-z0-9_]. Ids are put into URL paths, so nothing else passes. */
int stripe_ok_id(const char *s);

/* ------------------------------------------------------------------------ */
/* stripe_form.c                                                            */
/* ------------------------------------------------------------------------ */

/* A growable form body. On allocation failure `oom` is set and further
 * writes are ignored; check it once before sending. */
typedef struct stripe_form {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} stripe_form;

/* Append key=value (both percent-encoded; '[' and ']' stay literal in
 * keys). A NULL value adds nothing. */
void stripe_form_add(stripe_form *f, const char *key, const char *value);
void stripe_form_add_int(stripe_form *f, const char *key, int64_t value);
/* Percent-encode `s` into `f` as a value (no '&' or '='). */
void stripe_form_escape(stripe_form *f, const char *s, int is_key);
void stripe_form_free(stripe_form *f);

/* ------------------------------------------------------------------------ */
/* stripe_json.c                                                            */
/* ------------------------------------------------------------------------ */

/* The member at a dotted path ("next_action.redirect_to_url.url"), or
 * NULL when any step is missing or not an object. Borrowed. */
json_t *stripe_jget(json_t *o, const char *path);
/* The string at `path`, or NULL when absent or not a string. Borrowed. */
const char *stripe_jstr(json_t *o, const char *path);
/* The integer at `path`, or `def`. */
int64_t stripe_jint(json_t *o, const char *path, int64_t def);
/* 1 when the member at `path` is JSON true. */
int stripe_jtrue(json_t *o, const char *path);
/* An arena copy of the string at `path`, or NULL. *oom on failure. */
const char *stripe_jdup(const payd_host *h, payd_arena *a, json_t *o,
                        const char *path, int *oom);
/* An arena copy of a 3-letter currency, upper-cased; NULL otherwise. */
const char *stripe_jcurrency(const payd_host *h, payd_arena *a, json_t *o,
                             const char *path, int *oom);

/* ------------------------------------------------------------------------ */
/* stripe_errors.c                                                          */
/* ------------------------------------------------------------------------ */

/* payd's normalized failure code for Stripe's error `code` and
 * `decline_code` (either may be NULL). Static string, never NULL. */
const char *stripe_failure_code(const char *code, const char *decline_code);

/* Copy Stripe's human message into `out` when it is safe to show: a
 * message that could hold a card number, or that names a key or secret,
 * is replaced by `fallback`. */
void stripe_safe_message(const char *msg, const char *fallback, char *out,
                         size_t out_len);

/* Map a non-2xx answer (HTTP `status`, parsed `body` or NULL) to a
 * PAYD_E code with e->message (and e->failure_code for declines). */
int stripe_error_map(long status, json_t *body, payd_error *e);

/* ------------------------------------------------------------------------ */
/* stripe_api.c                                                             */
/* ------------------------------------------------------------------------ */

/* The answer of one API call. `obj` is a new reference the caller must
 * json_decref: the 2xx object, or on PAYD_E_DECLINED the PaymentIntent
 * Stripe attached to the card error (or NULL). `request_id` is Stripe's
 * Request-Id in the arena, or NULL. */
typedef struct stripe_answer {
    json_t *obj;
    const char *request_id;
} stripe_answer;

/*
 * One call: `method` on api_base + `path` (+ "?" `query` when not NULL),
 * with `form` as the body of a POST and `idempotency_key` sent as
 * Idempotency-Key (required for POST). A 2xx body must be a JSON object
 * whose "object" equals `expect` (when not NULL). Returns PAYD_OK or a
 * PAYD_E code with e filled; e->provider_request_id is always set when
 * Stripe sent one.
 */
int stripe_api(const stripe_instance *inst, const char *method,
               const char *path, const char *query, const stripe_form *form,
               const char *idempotency_key, const char *expect, payd_arena *a,
               stripe_answer *out, payd_error *e);

/* ------------------------------------------------------------------------ */
/* stripe_raw.c                                                             */
/* ------------------------------------------------------------------------ */

/* Compact JSON of `obj` for the audit with every client_secret and SDK
 * blob removed; in the arena, NULL on OOM. */
const char *stripe_raw_redacted(const payd_host *h, payd_arena *a,
                                json_t *obj);

/* ------------------------------------------------------------------------ */
/* stripe_intents.c                                                         */
/* ------------------------------------------------------------------------ */

/* payd's status of a PaymentIntent object (see stripe_intents.c). */
int stripe_intent_status(json_t *pi);

/* Fill `out` from a PaymentIntent (strings in the arena). PAYD_OK or
 * PAYD_E_NOMEM / PAYD_E_TRANSIENT (not a usable PaymentIntent). */
int stripe_intent_result(const stripe_instance *inst, json_t *pi,
                         payd_arena *a, payd_payment_res *out, payd_error *e);

/* ------------------------------------------------------------------------ */
/* stripe_refunds.c                                                         */
/* ------------------------------------------------------------------------ */

/* PAYD_RS_* for a Refund's status string; 0 when unknown. */
int stripe_refund_status(const char *status);

/* ------------------------------------------------------------------------ */
/* stripe_signature.c                                                       */
/* ------------------------------------------------------------------------ */

#define STRIPE_SIG_MAX_V1 8

/* A parsed Stripe-Signature header. `ts` points into the header. */
typedef struct stripe_sig {
    int64_t t;
    const char *ts;
    size_t ts_len;
    uint8_t v1[STRIPE_SIG_MAX_V1][32];
    size_t v1_count;
} stripe_sig;

/* Parse strictly: PAYD_OK, or PAYD_E_SIGNATURE with e->message. */
int stripe_signature_parse(const char *header, stripe_sig *out,
                           payd_error *e);
/* Parse and verify against every configured secret and the tolerance.
 * PAYD_OK with *t_out, PAYD_E_SIGNATURE or PAYD_E_NOMEM. */
int stripe_signature_verify(const stripe_instance *inst, payd_arena *a,
                            const char *header, const char *body,
                            size_t body_len, int64_t *t_out, payd_error *e);

/* ------------------------------------------------------------------------ */
/* The operations                                                           */
/* ------------------------------------------------------------------------ */

int stripe_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int stripe_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int stripe_confirm(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int stripe_capture(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int stripe_cancel(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int stripe_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int stripe_refund_retrieve(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int stripe_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event));
int stripe_save_method(PAYD_OP_ARGS(payd_method_req, payd_method));
int stripe_delete_method(PAYD_OP_ARGS(payd_method_req, payd_method));
int stripe_list_methods(PAYD_OP_ARGS(payd_method_req, payd_method_list));

#endif /* PAYD_STRIPE_H */
