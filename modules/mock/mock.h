/*
 * modules/mock/mock.h - declarations shared by the files of the mock gateway.
 *
 * The mock is a local stand-in for a Stripe-like provider. Its files:
 *   mock.c          descriptor, config, init/fini, public_info
 *   mock_ops.c      the gateway operations: input checks, fault injection,
 *                   idempotency, copying results into the arena
 *   mock_provider.c the fake provider's registry (one per module, behind
 *                   one mutex): lifecycle, idempotency records, stats
 *   mock_intents.c  payment intents and refunds: the state machine
 *   mock_methods.c  test cards, customers and saved methods
 *   mock_webhooks.c outbound events (signing, queue, delivery thread, settle
 *                   timers) and the incoming `webhook` operation
 *   mock_json.c     a strict, bounded parser for the events the mock emits
 *   mock_pages.c    the 3-D Secure challenge page and the stats page
 *   mock_buf.c      a growable string with JSON and HTML escaping
 *   mock_map.c      a string-keyed hash map that remembers insertion order
 *
 * Nothing here is exported from the shared object: it is built with
 * -fvisibility=hidden and only payd_module_v1 is marked PAYD_EXPORT.
 */
#ifndef PAYD_MOCK_H
#define PAYD_MOCK_H

#include <payd/module.h>
#include <payd/module_support.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MOCK_VERSION "1.0.0"

/* Registry bounds: the provider forgets its oldest objects past these. */
#define MOCK_MAX_INTENTS 100000
#define MOCK_MAX_REFUNDS 100000
#define MOCK_MAX_CUSTOMERS 100000
#define MOCK_MAX_METHODS 100000
#define MOCK_MAX_IDEMPOTENCY 100000
#define MOCK_MAX_STATS 100000
#define MOCK_MAX_METHODS_PER_CUSTOMER 64
/* Queued outbound webhook deliveries; more are dropped with a warning. */
#define MOCK_MAX_QUEUED_EVENTS 10000
/* Pending settle timers; past it, intents still settle lazily on read. */
#define MOCK_MAX_TIMERS 100000

/* Input bounds. */
#define MOCK_AMOUNT_MAX 999999999999LL
#define MOCK_ID_MAX 128          /* payment_id, refund_id, refs */
#define MOCK_KEY_MAX 255         /* idempotency keys */
#define MOCK_URL_MAX 2048        /* return_url */
#define MOCK_WEBHOOK_BODY_MAX (256 * 1024)

/* Refs: a prefix and 24 lower-case hex digits. */
#define MOCK_REF_HEX 24
#define MOCK_REF_SIZE 48

/* ------------------------------------------------------------------------ */
/* mock_buf.c                                                               */
/* ------------------------------------------------------------------------ */

/* A growable NUL-terminated heap string. On allocation failure it sets
 * `oom` and ignores further writes; check it once at the end. */
typedef struct mock_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} mock_buf;

void mock_buf_put(mock_buf *b, const char *s, size_t n);
void mock_buf_puts(mock_buf *b, const char *s);
void mock_buf_printf(mock_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mock_buf_json_str(mock_buf *b, const char *s);
void mock_buf_html(mock_buf *b, const char *s);
char *mock_buf_take(mock_buf *b, size_t *len);
void mock_buf_free(mock_buf *b);

/* ------------------------------------------------------------------------ */
/* mock_map.c                                                               */
/* ------------------------------------------------------------------------ */

typedef struct mock_map_entry {
    char *key;
    void *val;
    uint64_t hash;
    struct mock_map_entry *chain;  /* bucket chain */
    struct mock_map_entry *older;  /* insertion order */
    struct mock_map_entry *newer;
} mock_map_entry;

typedef struct mock_map {
    mock_map_entry **buckets;
    size_t nbuckets;               /* a power of two */
    size_t count;
    uint64_t seed;
    mock_map_entry *oldest;
    mock_map_entry *newest;
} mock_map;

int mock_map_init(mock_map *m, uint64_t seed);
void mock_map_destroy(mock_map *m, void (*free_val)(void *));
void *mock_map_get(const mock_map *m, const char *key);
int mock_map_put(mock_map *m, const char *key, void *val);
void *mock_map_remove(mock_map *m, const char *key);
void *mock_map_evict(mock_map *m, int (*prefer)(const void *val), size_t scan);

/* ------------------------------------------------------------------------ */
/* Instances (mock.c) and results                                           */
/* ------------------------------------------------------------------------ */

/* One configured instance. Immutable after init, so ops read it freely. */
typedef struct mock_instance {
    const payd_host *h;
    char *account;       /* payd.instance: scopes idempotency keys and
                            routes webhooks about the intents it created */
    char *public_url;    /* payd.public_url without a trailing '/', or "" */
    char *webhook_url;   /* payd.webhook_url, or NULL: no outbound webhooks */
    char *secret;        /* webhook signing secret (HMAC key = its bytes) */
    size_t secret_len;
    int64_t settle_ms;
    int64_t latency_ms;
    int64_t tolerance_s;
    double transient_rate;
    double timeout_rate;
    int webhooks;        /* 1 = on */
    int test_controls;   /* 1 = the test/ pages may change provider state */
    struct mock_instance *next;  /* live list, under mock_mu */
} mock_instance;

/* What an operation produced, with heap-owned strings, so it can be kept
 * as an idempotency record and copied into an arena after the lock. */
typedef struct mock_result {
    int rc;                       /* PAYD_OK or PAYD_E_* */
    char err_failure_code[48];
    char err_message[256];
    int lost;                     /* applied, but the response is "lost" */
    int status;                   /* payment or refund status */
    int next_action;
    int64_t amount;
    int64_t amount_capturable;
    int64_t amount_captured;
    int exp_month;
    int exp_year;
    char *ref;                    /* provider_ref, refund_ref or method_ref */
    char *url;                    /* next_action_url */
    char *failure_code;
    char *failure_message;
    char *raw;
    char *customer_ref;
    char *brand;
    char *last4;
} mock_result;

void mock_result_free(mock_result *r);
void mock_result_fail(mock_result *r, int rc, const char *failure_code,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------------ */
/* mock_provider.c: the registry, its lifecycle, idempotency, stats         */
/* ------------------------------------------------------------------------ */

/* The one module-global lock: registry, instance list, webhook queue. */
extern pthread_mutex_t mock_mu;

/* The registry's maps, used with mock_mu held: intents and refunds by
 * mock_intents.c, customers and methods by mock_methods.c, idem and stats
 * by mock_provider.c. */
typedef struct mock_registry {
    mock_map intents;
    mock_map refunds;
    mock_map customers;
    mock_map methods;
    mock_map idem;
    mock_map stats;
} mock_registry;

extern mock_registry mock_reg;

int mock_provider_acquire(mock_instance *inst, payd_error *e);
void mock_provider_release(mock_instance *inst);
mock_instance *mock_instance_find_locked(const char *account);
int mock_random_hex(const payd_host *h, char *out, size_t nbytes);
int mock_new_ref(const payd_host *h, const char *prefix, char *out);
char *mock_strdup_or_null(const char *s);
void mock_hex(char *out, const uint8_t *in, size_t n);
int64_t mock_mono_ms(void);

/* Idempotency records, with mock_mu held. lookup: 0 none, 1 replayed into
 * `out`, -1 same key with a different fingerprint. */
int mock_idem_lookup_locked(const char *account, const char *key,
                            const uint8_t fp[32], mock_result *out);
void mock_idem_store_locked(const char *account, const char *key,
                            const uint8_t fp[32], const mock_result *r);

/* Per-payment counters for the stats page. */
typedef struct mock_stats {
    int64_t intents_created;
    int64_t captures;
    int64_t refunds;
    int64_t create_calls;
} mock_stats;

mock_stats *mock_stats_get_locked(const char *payment_id, int create);
void mock_stats_count_create_call(const char *payment_id);
void mock_stats_read(const char *payment_id, mock_stats *out);

/* ------------------------------------------------------------------------ */
/* mock_intents.c: payment intents and refunds, with mock_mu held           */
/* ------------------------------------------------------------------------ */

/* Each call fills `r` and returns r->rc. */
int mock_intents_create_locked(const mock_instance *inst,
                               const payd_payment_req *req, mock_result *r);
int mock_intents_confirm_locked(const mock_instance *inst,
                                const payd_payment_req *req, mock_result *r);
int mock_intents_capture_locked(const mock_instance *inst,
                                const payd_payment_req *req, mock_result *r);
int mock_intents_cancel_locked(const mock_instance *inst,
                               const payd_payment_req *req, mock_result *r);
int mock_intents_retrieve_locked(const payd_payment_req *req, mock_result *r);
int mock_intents_refund_locked(const mock_instance *inst,
                               const payd_refund_req *req, mock_result *r);
int mock_intents_refund_retrieve_locked(const payd_refund_req *req,
                                        mock_result *r);

/* The 3-D Secure challenge. */
typedef struct mock_challenge {
    int status;
    int64_t amount;
    char currency[4];
    int currency_exponent;
} mock_challenge;

int mock_intents_challenge_locked(const char *ref, mock_challenge *out);
int mock_intents_challenge_complete_locked(const char *ref, int approve,
                                           char **return_url);

/* Test controls (the test/ pages, only with test_controls = on): change an
 * intent or a refund behind payd's back, the way a provider's dashboard or
 * a bug could, so reconciliation has something to find. No webhook is sent.
 * `status` 0 keeps the status; `amount_captured` < 0 keeps the amount.
 * PAYD_OK (r holds the object), PAYD_E_NOTFOUND, PAYD_E_INVALID or
 * PAYD_E_NOMEM. */
int mock_intents_test_set_locked(const char *ref, int status,
                                 int64_t amount_captured, mock_result *r);
int mock_intents_test_refund_set_locked(const char *ref, int status,
                                        mock_result *r);

/* Called by the settle timer. */
void mock_intents_settle_due_locked(const char *ref);
void mock_intents_destroy_locked(void);

/* ------------------------------------------------------------------------ */
/* mock_methods.c: test cards, customers, saved methods, with mock_mu held  */
/* ------------------------------------------------------------------------ */

/* How a test card behaves when a payment is confirmed with it. */
enum mock_behaviour {
    MOCK_B_SUCCEED,
    MOCK_B_DECLINE,
    MOCK_B_3DS,
    MOCK_B_PROCESSING,
    MOCK_B_TIMEOUT
};

typedef struct mock_card {
    const char *token;            /* Stripe's test token name */
    const char *number;           /* the test card number, or NULL */
    const char *brand;
    const char *last4;
    int exp_month;
    int exp_year;
    int behaviour;                /* enum mock_behaviour */
    const char *failure_code;
    const char *failure_message;
} mock_card;

/* resolve returns the card index or -1, and writes a displayable name (the
 * token or, when `saved`, a mock_pm_ ref; never a number) into `name`. */
const mock_card *mock_card_at(int idx);
int mock_method_resolve_locked(const char *pm, int saved,
                               char name[MOCK_REF_SIZE]);
int mock_methods_save_locked(const mock_instance *inst,
                             const payd_method_req *req, mock_result *r);
int mock_methods_delete_locked(const mock_instance *inst,
                               const payd_method_req *req, mock_result *r);
int mock_methods_list_locked(const mock_instance *inst,
                             const char *customer_ref, payd_method_list *out,
                             payd_arena *a, payd_error *e);
void mock_methods_destroy_locked(void);

/* ------------------------------------------------------------------------ */
/* mock_webhooks.c                                                          */
/* ------------------------------------------------------------------------ */

/* The payload of one outbound event; borrowed strings. */
typedef struct mock_event_data {
    const char *type;             /* payment.succeeded ... */
    const char *provider_ref;
    const char *payment_id;
    int64_t amount;
    const char *currency;
    const char *refund_ref;
    const char *refund_id;
    const char *failure_code;
    const char *failure_message;
} mock_event_data;

int mock_webhooks_start_locked(payd_error *e);
void mock_webhooks_stop_locked(void);
void mock_webhooks_wait_idle_locked(const mock_instance *inst);
void mock_webhooks_emit_locked(const char *account, const mock_event_data *d);
void mock_webhooks_schedule_settle_locked(const char *ref, int64_t due_ms);

/* ------------------------------------------------------------------------ */
/* mock_json.c                                                              */
/* ------------------------------------------------------------------------ */

/* The fields of an incoming event; strings in the arena, NULL if absent. */
typedef struct mock_json_event {
    const char *id;
    const char *type;
    int64_t created;              /* -1 if absent */
    const char *provider_ref;
    const char *payment_id;
    int64_t amount;
    const char *currency;
    const char *refund_ref;
    const char *refund_id;
    const char *failure_code;
    const char *failure_message;
} mock_json_event;

int mock_json_parse_event(const payd_host *h, payd_arena *a, const char *body,
                          size_t len, mock_json_event *ev, payd_error *e);

/* ------------------------------------------------------------------------ */
/* The operations (mock_ops.c, mock_webhooks.c, mock_pages.c)               */
/* ------------------------------------------------------------------------ */

int mock_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int mock_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int mock_confirm(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int mock_capture(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int mock_cancel(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));
int mock_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int mock_refund_retrieve(PAYD_OP_ARGS(payd_refund_req, payd_refund_res));
int mock_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event));
int mock_save_method(PAYD_OP_ARGS(payd_method_req, payd_method));
int mock_delete_method(PAYD_OP_ARGS(payd_method_req, payd_method));
int mock_list_methods(PAYD_OP_ARGS(payd_method_req, payd_method_list));
int mock_page(PAYD_OP_ARGS(payd_page_req, payd_page_res));

#endif /* PAYD_MOCK_H */
