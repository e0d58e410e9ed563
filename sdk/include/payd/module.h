/*
 * payd/module.h - the payd module ABI, version 1.
 *
 * This is the only header a payd module needs. It is plain C11 and depends on
 * nothing but <stddef.h> and <stdint.h>.
 *
 * A module is a shared object that exports exactly one symbol,
 * PAYD_ENTRY_SYMBOL ("payd_module_v1"), a function returning a pointer to a
 * static `payd_module` descriptor. The host loads it with
 * dlopen(RTLD_NOW|RTLD_LOCAL), checks the descriptor, and calls `init` once
 * per configured instance.
 *
 * Versioning rules (see sdk/README.md, "ABI versioning"):
 *   - PAYD_ABI_MAJOR changes on any incompatible change. The host refuses a
 *     module whose major differs from its own.
 *   - PAYD_ABI_MINOR changes when fields are appended to the END of a
 *     versioned struct (every struct that starts with `struct_size`). Nothing
 *     is ever removed, reordered or retyped within a major version.
 *   - Every versioned struct carries `struct_size`. For inputs, whoever
 *     fills the struct sets it. For results, the host sets it before the
 *     call to the size it allocated, and a module writes only the fields
 *     that fit inside it.
 *     A reader must not touch a field that lies beyond the struct_size it was
 *     given: the host treats a module's missing tail as absent (NULL/0), and a
 *     module built against a newer minor must check the host's struct_size
 *     before using a field it added.
 *   - A module descriptor smaller than the v1.0 size is refused.
 *
 * Threads: every function pointer a module exports may be called from many
 * host worker threads at once, with the same `state`. Only init and fini are
 * called alone.
 *
 * Memory: inputs are borrowed for the duration of the call. Every pointer a
 * module writes into a result must point into the call's arena (allocate
 * with host->alloc / host->strdup) or to static storage. The host frees the
 * arena after it has copied what it needs. A module never frees arena memory.
 *
 * Secrets: a module never logs, nor returns in an error or result, a card
 * number, CVC, secret key or full token.
 */
#ifndef PAYD_MODULE_H
#define PAYD_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAYD_ABI_MAJOR 1
#define PAYD_ABI_MINOR 1

/* The name of the one exported entry function. */
#define PAYD_ENTRY_SYMBOL "payd_module_v1"

/* Mark the entry function exported when building with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define PAYD_EXPORT __attribute__((visibility("default")))
#else
#define PAYD_EXPORT
#endif

/* ------------------------------------------------------------------------ */
/* Return codes. 0 is success; errors are small negative integers.          */
/* ------------------------------------------------------------------------ */

enum {
    PAYD_OK = 0,
    /* The request was rejected before it reached the provider (bad input,
     * unknown method, amount above what is capturable...). Final. */
    PAYD_E_INVALID = -1,
    /* The provider said no (card declined, insufficient funds...). Final.
     * Set payd_error.failure_code to a normalized code. */
    PAYD_E_DECLINED = -2,
    /* The credentials are wrong. The host reports it and does not retry. */
    PAYD_E_AUTH = -3,
    /* Timeout, connection failure, 429 or 5xx: the outcome is UNKNOWN. The
     * host marks the payment outcome_unknown and resolves it later with
     * `retrieve`; retrying with the same idempotency key is safe. */
    PAYD_E_TRANSIENT = -4,
    /* A definitive provider error that is not a decline (e.g. a conflicting
     * idempotency key). Final. */
    PAYD_E_PROVIDER = -5,
    /* A webhook failed signature verification (or is too old). */
    PAYD_E_SIGNATURE = -6,
    /* The module does not implement this operation. */
    PAYD_E_UNSUPPORTED = -7,
    /* Out of memory. */
    PAYD_E_NOMEM = -8,
    /* A bug or impossible state inside the module. */
    PAYD_E_INTERNAL = -9,
    /* The provider does not know the object asked for. */
    PAYD_E_NOTFOUND = -10
};

/*
 * Error detail, owned by the caller (the host zeroes it before each call).
 * `code` repeats the return code. `message` is human readable and must not
 * contain secrets or card data. `failure_code` is a normalized decline code
 * (card_declined, insufficient_funds, expired_card, incorrect_cvc,
 * authentication_required, processing_error, ...). `provider_request_id` is
 * the provider's own request id (Stripe's Request-Id), kept in the audit.
 */
typedef struct payd_error {
    int code;
    char failure_code[48];
    char message[256];
    char provider_request_id[96];
} payd_error;

/* ------------------------------------------------------------------------ */
/* Opaque host objects.                                                     */
/* ------------------------------------------------------------------------ */

/* A per-call allocator. Freed by the host after the call returns. */
typedef struct payd_arena payd_arena;
/* The module instance's configuration section. */
typedef struct payd_config payd_config;

/* ------------------------------------------------------------------------ */
/* Host services, lent to the module at init. Valid until fini returns.     */
/* ------------------------------------------------------------------------ */

enum payd_log_level {
    PAYD_LOG_DEBUG = 0,
    PAYD_LOG_INFO = 1,
    PAYD_LOG_WARN = 2,
    PAYD_LOG_ERROR = 3
};

/* One HTTP header, borrowed strings. */
typedef struct payd_header {
    const char *name;
    const char *value;
} payd_header;

/* An outbound HTTP request made through the host's libcurl client. */
typedef struct payd_http_request {
    uint32_t struct_size;        /* sizeof(payd_http_request) */
    const char *method;          /* "GET", "POST", "DELETE"... */
    const char *url;             /* absolute URL (http, https, smtp, smtps) */
    const payd_header *headers;  /* extra headers, may be NULL */
    size_t header_count;
    const char *body;            /* may be NULL */
    size_t body_len;
    long timeout_ms;             /* 0 = the host default ([server] http_timeout_ms) */
    const char *username;        /* HTTP basic / SMTP auth user, or NULL */
    const char *password;        /* never logged */
    /* SMTP only (url smtp:// or smtps://): envelope sender and recipients. */
    const char *mail_from;
    const char *const *mail_rcpt; /* NULL-terminated */
} payd_http_request;

/* The response; every pointer lives in the call's arena. */
typedef struct payd_http_response {
    uint32_t struct_size;
    long status;                 /* HTTP status, or SMTP reply code */
    char *body;                  /* NUL-terminated for convenience */
    size_t body_len;
    payd_header *headers;        /* response headers, names as sent */
    size_t header_count;
} payd_http_response;

typedef struct payd_host payd_host;
struct payd_host {
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t struct_size;        /* sizeof(payd_host) as the host knows it */

    /* Host private data. Do not touch. */
    void *host_private;

    /* -- v1.0 -- */

    /* Log a line, prefixed by the instance name. Never pass secrets or card
     * data. Thread-safe. */
    void (*log)(const payd_host *h, int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Look up `key` in the instance's config section. `env:NAME` and
     * `file:PATH` values come back resolved. Returns NULL when absent. The
     * string is owned by the host and lives until fini. Also answers the
     * read-only keys "payd.instance" (the instance name), "payd.public_url"
     * and "payd.webhook_url" (where this instance's provider webhooks go). */
    const char *(*config_get)(const payd_config *cfg, const char *key);

    /* Perform an HTTP(S) or SMTP request with the host's libcurl client:
     * TLS verification on, timeouts from config, connection reuse per
     * thread, and a request log with credentials redacted. Returns 0 when a
     * response arrived (any status: check res->status), PAYD_E_TRANSIENT on
     * timeout or connection failure, PAYD_E_NOMEM, or PAYD_E_INVALID for a
     * malformed request. `a` may be NULL (e.g. on a module's own thread,
     * outside any call): the status is then returned and the body and
     * headers are discarded. */
    int (*http)(const payd_host *h, const payd_http_request *req,
                payd_http_response *res, payd_arena *a, payd_error *e);

    /* Case-insensitive response header lookup; NULL when absent. */
    const char *(*http_header)(const payd_http_response *res, const char *name);

    /* Wall clock in unix seconds and milliseconds. Tests can shift it. */
    int64_t (*now)(const payd_host *h);
    int64_t (*now_ms)(const payd_host *h);

    /* Fill `buf` with `len` cryptographically secure random bytes. 0 or
     * PAYD_E_INTERNAL. */
    int (*random_bytes)(void *buf, size_t len);

    /* HMAC-SHA256 and SHA-256 into a 32-byte `out`. */
    void (*hmac_sha256)(const void *key, size_t key_len, const void *data,
                        size_t data_len, uint8_t out[32]);
    void (*sha256)(const void *data, size_t data_len, uint8_t out[32]);

    /* Constant-time comparison: 1 when equal, 0 otherwise. */
    int (*equal_ct)(const void *a, const void *b, size_t len);

    /* Lower-case hex and standard base64 encodings into the arena. Decoding
     * writes into the arena too and returns the length, or -1 on bad input. */
    char *(*hex_encode)(payd_arena *a, const void *data, size_t len);
    char *(*base64_encode)(payd_arena *a, const void *data, size_t len);
    long (*base64_decode)(payd_arena *a, const char *text, uint8_t **out);

    /* A small shared cache (Redis when configured, process memory
     * otherwise), namespaced per instance. cache_get returns 0 and an arena
     * copy, PAYD_E_NOTFOUND when absent. ttl_s > 0. */
    int (*cache_get)(const payd_host *h, const char *key, payd_arena *a,
                     char **value, size_t *value_len);
    int (*cache_set)(const payd_host *h, const char *key, const void *value,
                     size_t value_len, int ttl_s);

    /* Arena allocation. Memory is zeroed and 16-byte aligned. NULL on OOM. */
    void *(*alloc)(payd_arena *a, size_t size);
    char *(*strdup)(payd_arena *a, const char *s);
    char *(*strndup)(payd_arena *a, const char *s, size_t n);
    char *(*sprintf)(payd_arena *a, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

    /* Wipe memory that held a secret, in a way the compiler keeps. */
    void (*cleanse)(void *p, size_t len);

    /* -- v1.1 -- check PAYD_HAS_FIELD(h, payd_host, arena_free) first -- */

    /* An arena for work outside any call, such as a module's own thread
     * refreshing a token with host->http. The caller owns it and frees it
     * with arena_free. NULL on OOM. Thread-safe; the arena itself is not. */
    payd_arena *(*arena_new)(const payd_host *h);
    void (*arena_free)(payd_arena *a);

    /* New services are appended here, grouped by the minor that added them. */
};

/* ------------------------------------------------------------------------ */
/* Gateways.                                                                */
/* ------------------------------------------------------------------------ */

/* Normalized payment status (the provider's view of one intent). */
enum payd_payment_status {
    PAYD_PS_REQUIRES_PAYMENT_METHOD = 1,
    PAYD_PS_REQUIRES_CONFIRMATION = 2,
    PAYD_PS_REQUIRES_ACTION = 3,
    PAYD_PS_PROCESSING = 4,
    PAYD_PS_REQUIRES_CAPTURE = 5,
    PAYD_PS_SUCCEEDED = 6,
    PAYD_PS_FAILED = 7,
    PAYD_PS_CANCELED = 8
};

enum payd_next_action_type {
    PAYD_NA_NONE = 0,
    PAYD_NA_REDIRECT_URL = 1,        /* send the buyer to `url` */
    PAYD_NA_DISPLAY_INSTRUCTIONS = 2, /* show `text` (bank transfer...) */
    PAYD_NA_USE_SDK = 3              /* finish in the provider's JS SDK */
};

enum payd_capture_method {
    PAYD_CAPTURE_AUTOMATIC = 0,
    PAYD_CAPTURE_MANUAL = 1
};

/*
 * Input to create, confirm, capture, cancel and retrieve. Fields an
 * operation does not use are NULL/0. Borrowed for the call.
 */
typedef struct payd_payment_req {
    uint32_t struct_size;
    const char *payment_id;      /* payd's id (pay_...), put it in provider metadata */
    const char *order_id;        /* payd's order id (ord_...) */
    const char *order_number;    /* human-readable order number */
    /* Stable per operation: "payd-<payment>-<op>-<attempt>". Forward it as
     * the provider's idempotency key; the same key means the same call. */
    const char *idempotency_key;
    int64_t amount;              /* minor units, > 0 */
    const char *currency;        /* ISO 4217, upper case */
    int currency_exponent;       /* 0 (JPY), 2 (USD), 3 (KWD) */
    const char *provider_ref;    /* set for every op but create */
    const char *payment_method;  /* provider token, e.g. pm_card_visa */
    const char *customer_ref;    /* provider customer, or NULL */
    int capture_method;          /* enum payd_capture_method */
    int confirm;                 /* create: confirm immediately */
    const char *return_url;      /* where the buyer returns after an action */
    const char *description;
    const char *statement_descriptor_suffix;
    const char *customer_email;
    int64_t amount_to_capture;   /* capture: 0 = everything capturable */
    const char *cancel_reason;   /* cancel: optional */
} payd_payment_req;

/* Output of the payment operations; strings live in the arena. */
typedef struct payd_payment_res {
    uint32_t struct_size;
    int status;                  /* enum payd_payment_status */
    const char *provider_ref;
    const char *client_secret;   /* for PAYD_NA_USE_SDK, else NULL */
    int next_action;             /* enum payd_next_action_type */
    const char *next_action_url;
    const char *next_action_text;
    const char *failure_code;    /* normalized, for FAILED */
    const char *failure_message;
    int64_t amount;              /* authorized amount */
    int64_t amount_capturable;
    int64_t amount_captured;
    const char *raw;             /* provider response as redacted JSON (no client
                                    secrets, no card data), kept in the audit */
    const char *provider_request_id; /* kept in the audit; on errors use
                                        payd_error.provider_request_id */
} payd_payment_res;

enum payd_refund_status {
    PAYD_RS_PENDING = 1,
    PAYD_RS_SUCCEEDED = 2,
    PAYD_RS_FAILED = 3,
    PAYD_RS_CANCELED = 4
};

/* Input to refund and refund_retrieve. */
typedef struct payd_refund_req {
    uint32_t struct_size;
    const char *refund_id;       /* payd's id (re_...) */
    const char *payment_id;
    const char *idempotency_key;
    const char *provider_ref;    /* the payment's provider ref */
    const char *refund_ref;      /* refund_retrieve: the provider's refund ref */
    int64_t amount;              /* minor units, > 0 */
    const char *currency;
    int currency_exponent;
    const char *reason;          /* duplicate, fraudulent, requested_by_customer, or NULL */
} payd_refund_req;

typedef struct payd_refund_res {
    uint32_t struct_size;
    int status;                  /* enum payd_refund_status */
    const char *refund_ref;
    const char *failure_code;
    const char *failure_message;
    const char *raw;
    const char *provider_request_id;
} payd_refund_res;

/* A raw incoming webhook, borrowed. */
typedef struct payd_webhook_req {
    uint32_t struct_size;
    const payd_header *headers;
    size_t header_count;
    const char *body;            /* the exact bytes received; body[body_len] is
                                    NUL and the body holds no other NUL (the
                                    host refuses those) */
    size_t body_len;
} payd_webhook_req;

enum payd_event_type {
    PAYD_EV_IGNORED = 0,
    PAYD_EV_PAYMENT_SUCCEEDED = 1,
    PAYD_EV_PAYMENT_FAILED = 2,
    PAYD_EV_PAYMENT_REQUIRES_ACTION = 3,
    PAYD_EV_PAYMENT_CANCELED = 4,
    PAYD_EV_REFUND_SUCCEEDED = 5,
    PAYD_EV_REFUND_FAILED = 6,
    PAYD_EV_DISPUTE_CREATED = 7,
    PAYD_EV_DISPUTE_CLOSED = 8,
    PAYD_EV_METHOD_ATTACHED = 9,
    PAYD_EV_PAYMENT_PROCESSING = 10,
    PAYD_EV_PAYMENT_CAPTURABLE = 11
};

/* One verified, normalized provider event. Strings live in the arena. */
typedef struct payd_event {
    uint32_t struct_size;
    int type;                    /* enum payd_event_type */
    const char *provider_event_id; /* required: the dedup key */
    const char *provider_type;   /* the provider's own event name */
    const char *payment_id;      /* payd's id from provider metadata, or NULL */
    const char *provider_ref;    /* the payment's provider ref */
    const char *refund_ref;
    const char *refund_id;       /* payd's refund id from metadata, or NULL */
    int64_t amount;              /* minor units, 0 if not applicable */
    const char *currency;
    int64_t occurred_at;         /* unix seconds */
    const char *failure_code;
    const char *failure_message;
} payd_event;

/* A saved payment method: provider token plus display data only. */
typedef struct payd_method {
    uint32_t struct_size;
    const char *method_ref;      /* provider token, e.g. pm_... */
    const char *customer_ref;
    const char *brand;
    const char *last4;
    int exp_month;
    int exp_year;
} payd_method;

typedef struct payd_method_req {
    uint32_t struct_size;
    const char *customer_ref;    /* NULL on save: the module creates one */
    const char *customer_email;
    const char *method_ref;
    const char *idempotency_key;
} payd_method_req;

typedef struct payd_method_list {
    uint32_t struct_size;
    payd_method *items;          /* arena array */
    size_t count;
} payd_method_list;

/* A hosted page the module serves under the host (PAYD_CAP_PAGES), e.g.
 * the mock's 3-D Secure challenge at /mock/3ds/{ref}. */
typedef struct payd_page_req {
    uint32_t struct_size;
    const char *method;
    const char *path;            /* below the module's prefix, e.g. "3ds/mock_pi_1" */
    const char *query;           /* may be NULL */
    const char *body;            /* form body for POST, may be NULL */
    size_t body_len;
} payd_page_req;

typedef struct payd_page_res {
    uint32_t struct_size;
    int status;                  /* HTTP status */
    const char *content_type;
    const char *body;
    size_t body_len;
    const char *location;        /* for 302/303 */
} payd_page_res;

#define PAYD_OP_ARGS(req_t, res_t) \
    void *state, const req_t *req, res_t *res, payd_arena *a, payd_error *e

typedef struct payd_gateway_ops {
    uint32_t struct_size;
    /* Required. */
    int (*create)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
    int (*retrieve)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
    /* Optional: NULL means PAYD_E_UNSUPPORTED (but see the capability bits). */
    int (*confirm)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
    int (*capture)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
    int (*cancel)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
    int (*refund)(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
    int (*refund_retrieve)(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
    int (*webhook)(PAYD_OP_ARGS(payd_webhook_req, payd_event));
    int (*save_method)(PAYD_OP_ARGS(payd_method_req, payd_method));
    int (*delete_method)(PAYD_OP_ARGS(payd_method_req, payd_method));
    int (*list_methods)(PAYD_OP_ARGS(payd_method_req, payd_method_list));
    int (*page)(PAYD_OP_ARGS(payd_page_req, payd_page_res));
    /* Public, non-secret data for frontends (e.g. a publishable key), as a
     * JSON object string, or NULL. Shown by GET /v1/gateways. */
    const char *(*public_info)(void *state);
    /* New operations are appended here. */
} payd_gateway_ops;

/* ------------------------------------------------------------------------ */
/* Notifiers.                                                               */
/* ------------------------------------------------------------------------ */

/* One event to deliver. `object_json` is the event's object as JSON. */
typedef struct payd_notification {
    uint32_t struct_size;
    const char *event_id;        /* evt_...: receivers dedup on it */
    const char *event_type;      /* order.paid, refund.succeeded, ... */
    int64_t created_at;          /* unix seconds */
    const char *object_json;
    const char *event_json;      /* the whole event envelope, as JSON */
    int attempt;                 /* 1 for the first delivery */
} payd_notification;

typedef struct payd_notifier_ops {
    uint32_t struct_size;
    /* Deliver. 0 = delivered; PAYD_E_TRANSIENT = retry later;
     * any other error = permanent failure (dead-lettered). */
    int (*notify)(void *state, const payd_notification *n, payd_arena *a,
                  payd_error *e);
} payd_notifier_ops;

/* ------------------------------------------------------------------------ */
/* The module descriptor.                                                   */
/* ------------------------------------------------------------------------ */

enum payd_kind {
    PAYD_KIND_GATEWAY = 1,
    PAYD_KIND_NOTIFIER = 2
};

/* Capability bits. Advertising a bit whose function is NULL is a load error. */
#define PAYD_CAP_CAPTURE_LATER   (1ull << 0)  /* needs capture + cancel */
#define PAYD_CAP_PARTIAL_CAPTURE (1ull << 1)  /* needs capture */
#define PAYD_CAP_REFUND          (1ull << 2)  /* needs refund */
#define PAYD_CAP_PARTIAL_REFUND  (1ull << 3)  /* needs refund */
#define PAYD_CAP_WEBHOOKS        (1ull << 4)  /* needs webhook */
#define PAYD_CAP_SAVED_METHODS   (1ull << 5)  /* needs save/delete/list_methods */
#define PAYD_CAP_3DS             (1ull << 6)
#define PAYD_CAP_REDIRECT        (1ull << 7)
#define PAYD_CAP_CANCEL          (1ull << 8)  /* needs cancel */
#define PAYD_CAP_PAGES           (1ull << 9)  /* needs page */
#define PAYD_CAP_CONFIRM         (1ull << 10) /* needs confirm */
/* No provider settles this gateway's money: an admin approves or rejects
 * each payment and confirms each refund through payd's admin API. The
 * core never polls such a payment or pending refund, keeps a processing
 * payment's display_instructions on show, and cancels payments unpaid
 * after the instance key `auto_expire_days` (read by the core too). */
#define PAYD_CAP_ADMIN_SETTLES   (1ull << 11)

typedef struct payd_module {
    uint16_t abi_major;          /* PAYD_ABI_MAJOR the module was built with */
    uint16_t abi_minor;          /* PAYD_ABI_MINOR the module was built with */
    uint32_t struct_size;        /* sizeof(payd_module) */
    const char *name;            /* short module name: "mock", "stripe" */
    const char *version;         /* the module's own version, "1.2.0" */
    const char *description;
    uint32_t kind;               /* enum payd_kind */
    uint64_t caps;               /* PAYD_CAP_* bits */
    /* Called once per instance, alone. Resolve config (read every key
     * here: keys not read are reported as unknown), allocate state. Return
     * 0, or a negative code with e->message saying why. The host owns `h`
     * and `cfg` until fini. Before the real call the host runs init and
     * fini once in a forked child to catch a crash, so init may run twice
     * per start: keep it free of outside effects that must not repeat. */
    int (*init)(const payd_host *h, const payd_config *cfg, void **state,
                payd_error *e);
    /* Release everything init made. Called once, alone. May be NULL. */
    void (*fini)(void *state);
    const payd_gateway_ops *gateway;   /* NULL for notifiers */
    const payd_notifier_ops *notifier; /* NULL for gateways */
    /* New fields only below, with abi_minor bumped. */
} payd_module;

/* 1 when a versioned struct `p` of type T (filled by the other side, with
 * its own struct_size) contains field `f`, e.g.
 * PAYD_HAS_FIELD(h, payd_host, arena_new) before using a v1.1 service. */
#define PAYD_HAS_FIELD(p, T, f) \
    ((p)->struct_size >= offsetof(T, f) + sizeof(((T *)0)->f))

/* Initializer for the header of a payd_module. */
#define PAYD_MODULE_V1 \
    .abi_major = PAYD_ABI_MAJOR, .abi_minor = PAYD_ABI_MINOR, \
    .struct_size = (uint32_t)sizeof(payd_module)

/* The type of the entry function. */
typedef const payd_module *(*payd_entry_fn)(void);

/* Use once in a module: PAYD_DECLARE_MODULE(my_descriptor); */
#define PAYD_DECLARE_MODULE(desc) \
    PAYD_EXPORT const payd_module *payd_module_v1(void); \
    PAYD_EXPORT const payd_module *payd_module_v1(void) { return &(desc); }

/* Helper to name a status in logs. */
static inline const char *payd_payment_status_name(int s)
{
    switch (s) {
    case PAYD_PS_REQUIRES_PAYMENT_METHOD: return "requires_payment_method";
    case PAYD_PS_REQUIRES_CONFIRMATION: return "requires_confirmation";
    case PAYD_PS_REQUIRES_ACTION: return "requires_action";
    case PAYD_PS_PROCESSING: return "processing";
    case PAYD_PS_REQUIRES_CAPTURE: return "requires_capture";
    case PAYD_PS_SUCCEEDED: return "succeeded";
    case PAYD_PS_FAILED: return "failed";
    case PAYD_PS_CANCELED: return "canceled";
    default: return "unknown";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* PAYD_MODULE_H */
