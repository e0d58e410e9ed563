/*
 * modules/paypal/paypal.h - declarations shared by the files of the PayPal
 * gateway.
 *
 * The module speaks PayPal's REST API (JSON both ways, OAuth2 bearer
 * tokens) through the host's HTTP client, and verifies PayPal's signed
 * webhooks offline with OpenSSL. Its files, one concern each:
 *   paypal.c            descriptor, configuration, init/fini, public_info
 *   paypal_abi.c        ABI plumbing: copying requests in and results out,
 *                       errors, arena copies, input checks
 *   paypal_amount.c     minor units <-> PayPal's decimal strings
 *   paypal_json.c       small typed accessors over jansson values
 *   paypal_token.c      OAuth2 client credentials, cached in the host
 *                       cache, refreshed once under a lock
 *   paypal_api.c        one API call: bearer token, PayPal-Request-Id,
 *                       one refresh and retry on a 401, debug_id
 *   paypal_errors.c     PayPal's error names and issues to PAYD_E codes
 *   paypal_raw.c        the redacted copy of a provider object for the audit
 *   paypal_orders.c     Orders v2 and authorizations: create, confirm,
 *                       capture, cancel, retrieve, and the status mapping
 *   paypal_refunds.c    refunds of captures: create and retrieve
 *   paypal_cert.c       the signing certificate: URL allow-list, download,
 *                       chain and dates, a bounded cache
 *   paypal_signature.c  the signed message, CRC-32, transmission time,
 *                       SHA256withRSA, and the verify-webhook-signature API
 *   paypal_webhook.c    the webhook operation: verify, then map the event
 *
 * Nothing here is exported from the shared object: it is built with
 * -fvisibility=hidden and only payd_module_v1 is marked PAYD_EXPORT.
 * Every operation may run on many threads at once with one instance. The
 * configuration is immutable after init; the two mutable parts (the token
 * refresh lock and the certificate cache) carry their own mutexes.
 */
#ifndef PAYD_PAYPAL_H
#define PAYD_PAYPAL_H

#include <payd/module.h>
#include <payd/module_support.h>

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define PAYPAL_VERSION "1.0.0"

#define PAYPAL_SANDBOX_API_BASE "https://api-m.sandbox.paypal.com"
#define PAYPAL_LIVE_API_BASE "https://api-m.paypal.com"
#define PAYPAL_DEFAULT_CERT_HOSTS \
    "api.paypal.com,api-m.paypal.com,api.sandbox.paypal.com," \
    "api-m.sandbox.paypal.com"

/* Input bounds. */
#define PAYPAL_ID_MAX 127              /* custom_id, invoice_id, PayPal ids */
#define PAYPAL_REQUEST_ID_MAX 108      /* PayPal-Request-Id */
#define PAYPAL_URL_MAX 2048
#define PAYPAL_SEAL_KEY_LEN 32
#define PAYPAL_WEBHOOK_BODY_MAX (1024 * 1024)
#define PAYPAL_RAW_MAX (64 * 1024)     /* larger raw objects are summarized */
#define PAYPAL_MAX_CERT_HOSTS 16
#define PAYPAL_CERT_CACHE_SLOTS 8
#define PAYPAL_CERT_MAX (64 * 1024)    /* larger PEM chains are refused */
#define PAYPAL_TOKEN_MAX 4096

/* How incoming webhooks are verified. */
enum paypal_verify_mode {
    PAYPAL_VERIFY_OFFLINE = 0,  /* CRC-32 message + SHA256withRSA, here */
    PAYPAL_VERIFY_API = 1       /* PayPal's verify-webhook-signature call */
};

/* ------------------------------------------------------------------------ */
/* The instance (paypal.c)                                                  */
/* ------------------------------------------------------------------------ */

/* One allowed host (and port) for PAYPAL-CERT-URL. */
typedef struct paypal_cert_host {
    char name[256];              /* lower case */
    int port;                    /* 443 unless the entry names one */
} paypal_cert_host;

/* One cached, verified signing certificate. */
typedef struct paypal_cert_entry {
    char *url;                   /* malloc'd; NULL = empty slot */
    void *pkey;                  /* EVP_PKEY *, one reference owned here */
    int64_t not_after;           /* unix seconds: dropped after this */
    uint64_t used;               /* LRU clock */
} paypal_cert_entry;

/* One configured instance. The configuration fields are immutable after
 * init, so ops read them freely; `token_mu` serializes token refreshes and
 * `cert_mu` guards `certs`. Secrets live in malloc'd memory that fini
 * wipes. */
typedef struct paypal_instance {
    const payd_host *h;
    char *name;                  /* payd.instance, for messages and logs */
    char *client_id;             /* public (PayPal's JS SDK takes it) */
    char *client_secret;         /* never logged, never returned */
    size_t client_secret_len;
    char *webhook_id;            /* or NULL: webhooks are refused */
    char *api_base;              /* without a trailing '/' */
    int live;                    /* mode = live */
    int verify_mode;             /* enum paypal_verify_mode */
    paypal_cert_host cert_hosts[PAYPAL_MAX_CERT_HOSTS];
    size_t cert_host_count;
    char *cert_ca_file;          /* or NULL: OpenSSL's default paths */
    int64_t tolerance_s;         /* webhook transmission time tolerance */
    long timeout_ms;             /* 0 = the host's default */
    char *brand_name;            /* or NULL */
    char *shipping_preference;   /* or NULL */
    char *public_info;           /* JSON object text for GET /v1/gateways */

    uint8_t seal_key[PAYPAL_SEAL_KEY_LEN]; /* seals the cached token; wiped */
    char token_cache_key[48];    /* "oauth_token.v1.<key id>", see paypal_seal_key */
    pthread_mutex_t token_mu;    /* held while a token is being fetched */
    pthread_mutex_t cert_mu;     /* guards certs and cert_clock */
    paypal_cert_entry certs[PAYPAL_CERT_CACHE_SLOTS];
    uint64_t cert_clock;
} paypal_instance;

/* ------------------------------------------------------------------------ */
/* paypal_abi.c                                                             */
/* ------------------------------------------------------------------------ */

/* Copying requests and results across the ABI, errors (payd_fail,
 * PAYD_ERROR_GUARD), arena copies (payd_adup) and the text and currency
 * checks (payd_text_ok, payd_currency_ok) come from payd/module_support.h. */

/* 1 when `s` is 1..PAYPAL_ID_MAX characters of [A-Za-z0-9_-]: what PayPal
 * ids and payd ids look like. Ids go into URL paths; nothing else passes. */
int paypal_ok_id(const char *s);
/* 1 for an http(s) URL of at most PAYPAL_URL_MAX bytes with no spaces or
 * control characters. */
int paypal_ok_url(const char *s);

/* ------------------------------------------------------------------------ */
/* paypal_amount.c                                                          */
/* ------------------------------------------------------------------------ */

/* Longest decimal string this module writes or reads, NUL included. */
#define PAYPAL_AMOUNT_TEXT_MAX 48

/* The ISO 4217 exponent of `currency` (0, 2, 3 or 4; 2 for codes not in
 * the exception lists), or -1 for something that is not a code. */
int paypal_currency_exponent(const char *currency);

/* `minor` units of `currency` (exponent `exp`) as PayPal's value string,
 * e.g. 1999 USD -> "19.99", 500 JPY -> "500", 1234 KWD -> "1.234". For
 * the currencies PayPal takes in whole units only (HUF, TWD) the amount
 * must be whole. PAYD_OK, or PAYD_E_INVALID (negative, exponent out of
 * range, a fraction PayPal cannot take). */
int paypal_amount_format(int64_t minor, const char *currency, int exp,
                         char out[PAYPAL_AMOUNT_TEXT_MAX]);

/* Parse PayPal's value string into minor units with exponent `exp`:
 * digits, optionally '.' and 1..exp digits (fewer are padded). Rejects
 * signs, spaces, empty parts, more decimals than the exponent, and
 * overflow. PAYD_OK or PAYD_E_INVALID. */
int paypal_amount_parse(const char *value, int exp, int64_t *minor);

/* Read {"currency_code","value"} at `o` into minor units with the
 * currency's own exponent. PAYD_OK or PAYD_E_INVALID. */
int paypal_amount_read(json_t *o, int64_t *minor, const char **currency);

/* ------------------------------------------------------------------------ */
/* paypal_json.c                                                            */
/* ------------------------------------------------------------------------ */

/* The member at a dotted path; numeric steps index arrays
 * ("purchase_units.0.payments.captures.0.id"). NULL when any step is
 * missing or of the wrong kind. Borrowed. */
json_t *paypal_jget(json_t *o, const char *path);
/* The string at `path`, or NULL. Borrowed. */
const char *paypal_jstr(json_t *o, const char *path);
/* The integer at `path`, or `def`. */
int64_t paypal_jint(json_t *o, const char *path, int64_t def);
/* An arena copy of the string at `path`, or NULL. *oom on failure. */
const char *paypal_jdup(const payd_host *h, payd_arena *a, json_t *o,
                        const char *path, int *oom);
/* The href of the first link in array `links` whose rel is one of the
 * NULL-terminated `rels` (tried in order), when it is an https URL (or
 * http on a loopback host, for fakes). Borrowed; NULL when none. */
const char *paypal_link(json_t *links, const char *const *rels);

/* ------------------------------------------------------------------------ */
/* paypal_token.c                                                           */
/* ------------------------------------------------------------------------ */

/* paypal_token_seal.c: the token as the shared cache holds it. The key is
 * derived from the client secret, client id and API base into `key`, and
 * the cache entry's name from the key (`cache_key`, a public key id), so
 * processes with other credentials or an older format never share an
 * entry (PAYD_OK, or PAYD_E_INVALID for an overlong id or base). Seal answers
 * base64 text in the arena (NULL on failure); open answers the token, or
 * NULL for a value that was changed, sealed under another key, or is not
 * a sealed token. */
int paypal_seal_key(const payd_host *h, const paypal_instance *inst,
                    uint8_t key[PAYPAL_SEAL_KEY_LEN], char cache_key[48]);
char *paypal_token_seal(const payd_host *h, payd_arena *a,
                        const uint8_t key[PAYPAL_SEAL_KEY_LEN],
                        const char *token);
char *paypal_token_open(const payd_host *h, payd_arena *a,
                        const uint8_t key[PAYPAL_SEAL_KEY_LEN],
                        const char *sealed);

/*
 * An OAuth2 access token for the instance, copied into the arena. When
 * `stale` is not NULL the caller was refused with that token (a 401): a
 * cached token equal to it is not reused. PAYD_OK, PAYD_E_AUTH (PayPal
 * refused the client credentials), PAYD_E_TRANSIENT, PAYD_E_NOMEM.
 */
int paypal_token(paypal_instance *inst, payd_arena *a, const char *stale,
                 const char **token, payd_error *e);

/* ------------------------------------------------------------------------ */
/* paypal_errors.c                                                          */
/* ------------------------------------------------------------------------ */

/* The first details[].issue of an error body, else its name; NULL. */
const char *paypal_error_issue(json_t *body);

/* Copy PayPal's human message into `out` when it is safe to show (no run
 * of digits that could be a card number), else `fallback`. */
void paypal_safe_message(const char *msg, const char *fallback, char *out,
                         size_t out_len);

/* Map a non-2xx answer (HTTP `status`, parsed `body` or NULL) to a PAYD_E
 * code with e->message (and e->failure_code for declines). */
int paypal_error_map(long status, json_t *body, payd_error *e);

/* ------------------------------------------------------------------------ */
/* paypal_api.c                                                             */
/* ------------------------------------------------------------------------ */

/* The answer of one API call. `obj` is a new reference the caller must
 * json_decref whatever the return code: the 2xx object (NULL for an empty
 * 2xx such as 204), or the parsed error body. `debug_id` is PayPal's
 * Paypal-Debug-Id (or the body's debug_id) in the arena, or NULL. */
typedef struct paypal_answer {
    json_t *obj;
    long status;
    const char *debug_id;
} paypal_answer;

/*
 * One call: `method` on api_base + `path` with `body` (borrowed, sent as
 * compact JSON; a POST without one sends "{}") and `request_id` sent as
 * PayPal-Request-Id (required for POST). A 401 refreshes the token once
 * and retries once with the same PayPal-Request-Id. Returns PAYD_OK or a
 * PAYD_E code with e filled; e->provider_request_id carries the debug id.
 */
int paypal_api(paypal_instance *inst, const char *method, const char *path,
               json_t *body, const char *request_id, payd_arena *a,
               paypal_answer *out, payd_error *e);

/* ------------------------------------------------------------------------ */
/* paypal_raw.c                                                             */
/* ------------------------------------------------------------------------ */

/* Compact JSON of `obj` for the audit without payer data (payer,
 * payment_source, shipping: names, emails, addresses); in the arena, NULL
 * on OOM. */
const char *paypal_raw_redacted(const payd_host *h, payd_arena *a,
                                json_t *obj);

/* ------------------------------------------------------------------------ */
/* paypal_orders.c                                                          */
/* ------------------------------------------------------------------------ */

/* payd's status for a PayPal capture / authorization / order status
 * string; 0 when unknown. */
int paypal_capture_status(const char *status);
int paypal_authorization_status(const char *status);

/* Fill `out` from an order object (strings in the arena). PAYD_OK, or
 * PAYD_E_TRANSIENT (not an order payd can read), PAYD_E_NOMEM. */
int paypal_order_result(const paypal_instance *inst, json_t *order,
                        payd_arena *a, payd_payment_res *out, payd_error *e);

/* The JSON body of POST /v2/checkout/orders for `req` (new reference), or
 * NULL with e set (PAYD_E_INVALID for an amount PayPal cannot take). */
json_t *paypal_order_create_body(const paypal_instance *inst,
                                 const payd_payment_req *req, payd_error *e);

/* ------------------------------------------------------------------------ */
/* paypal_refunds.c                                                         */
/* ------------------------------------------------------------------------ */

/* PAYD_RS_* for a refund status string; 0 when unknown. */
int paypal_refund_status(const char *status);

/* ------------------------------------------------------------------------ */
/* paypal_cert.c                                                            */
/* ------------------------------------------------------------------------ */

/* Parse the comma list of cert_hosts ("host" or "host:port") into `inst`.
 * PAYD_OK or PAYD_E_INVALID naming the key. */
int paypal_cert_hosts_parse(paypal_instance *inst, const char *list,
                            payd_error *e);

/* 1 when `url` is https://<allowed host>[:port]/... with no user info. */
int paypal_cert_url_allowed(const paypal_instance *inst, const char *url);

/*
 * The public key of the verified certificate at `url` (a new reference
 * the caller frees with EVP_PKEY_free), from the cache or downloaded and
 * verified: chain against cert_ca_file (or the system store) at the
 * host's clock, validity dates included. PAYD_OK, PAYD_E_SIGNATURE (URL
 * not allowed, not a certificate, chain or dates wrong),
 * PAYD_E_TRANSIENT (could not download), PAYD_E_NOMEM.
 */
int paypal_cert_key(paypal_instance *inst, const char *url, payd_arena *a,
                    void **pkey, payd_error *e);

/* Drop every cached certificate (fini). */
void paypal_cert_cache_clear(paypal_instance *inst);

/* ------------------------------------------------------------------------ */
/* paypal_signature.c                                                       */
/* ------------------------------------------------------------------------ */

/* The five PAYPAL-* headers of one delivery, borrowed. */
typedef struct paypal_sig_headers {
    const char *transmission_id;
    const char *transmission_time;
    const char *transmission_sig;
    const char *cert_url;
    const char *auth_algo;
} paypal_sig_headers;

/* CRC-32 (zlib's) of the body as unsigned decimal into `out`. */
void paypal_crc32_decimal(const char *body, size_t len, char out[11]);

/* "transmission_id|transmission_time|webhook_id|crc32" in the arena, or
 * NULL on OOM. */
char *paypal_signed_message(const payd_host *h, payd_arena *a,
                            const paypal_sig_headers *s,
                            const char *webhook_id, const char *body,
                            size_t body_len);

/* Parse an RFC 3339 time (2026-11-22T10:00:00Z, fractions and offsets
 * allowed) into unix seconds. 0, or -1 when malformed. */
int paypal_parse_time(const char *s, int64_t *out);

/* PAYD_OK when `t` is within `tolerance_s` of `now` either way, else
 * PAYD_E_SIGNATURE with a message. */
int paypal_check_time(int64_t t, int64_t now, int64_t tolerance_s,
                      payd_error *e);

/* Verify a delivery (offline or through the API, as configured): the
 * headers, the time, then the signature. `event` is the parsed body (for
 * the API mode). PAYD_OK, PAYD_E_SIGNATURE, PAYD_E_TRANSIENT (the API
 * or the certificate could not be reached), PAYD_E_NOMEM. */
int paypal_signature_verify(paypal_instance *inst, payd_arena *a,
                            const paypal_sig_headers *s, const char *body,
                            size_t body_len, json_t *event, payd_error *e);

/* ------------------------------------------------------------------------ */
/* paypal_webhook.c                                                         */
/* ------------------------------------------------------------------------ */

/* Fill `out` (type, ids, amount) from a parsed PayPal event. PAYD_OK,
 * PAYD_E_INVALID (not a PayPal event) or PAYD_E_NOMEM. */
int paypal_event_map(const payd_host *h, payd_arena *a, json_t *ev,
                     payd_event *out, payd_error *e);

/* ------------------------------------------------------------------------ */
/* The operations                                                           */
/* ------------------------------------------------------------------------ */

int paypal_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int paypal_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int paypal_confirm(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int paypal_capture(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int paypal_cancel(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int paypal_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int paypal_refund_retrieve(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int paypal_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event));

#endif /* PAYD_PAYPAL_H */
