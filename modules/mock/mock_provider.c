/*
 * modules/mock/mock_provider.c - the fake provider's servers: the registry,
 * its lifecycle, idempotency records and per-payment counters.
 *
 * Like Stripe's, the mock provider's state is shared by every client: one
 * registry per loaded module, not per instance. It holds payment intents
 * and refunds (mock_intents.c), customers and saved methods
 * (mock_methods.c), idempotency records and per-payment counters (here),
 * all behind the module-global mock_mu. Critical sections are in-memory
 * and short; the host's services are never called with the lock held
 * except arena allocation, random bytes, the clock and logging.
 *
 * Every function named *_locked expects mock_mu held by the caller. The
 * registry is created by the first instance's init and freed by the last
 * instance's fini (the provider then "restarts" empty, like stripe-mock).
 * Each map is bounded; past the bound the oldest objects are forgotten
 * (terminal intents first), so a long benchmark cannot exhaust memory.
 */
#include "mock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

pthread_mutex_t mock_mu = PTHREAD_MUTEX_INITIALIZER;
/* Serializes init and fini of instances (acquire/release), which must
 * drop mock_mu while joining the delivery thread. */
static pthread_mutex_t mock_life_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct mock_idem {
    uint8_t fp[32];
    mock_result res;
} mock_idem;

mock_registry mock_reg;

/* Live instances; the first acquire creates the registry, the last
 * release frees it. */
static struct {
    int refs;
    mock_instance *instances;
} mock_g;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

int64_t mock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Lower-case hex of `n` bytes into `out` (2n + 1 bytes). */
void mock_hex(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* `nbytes` (at most 32) random bytes as hex into `out`. 0 or
 * PAYD_E_INTERNAL when the host has no randomness. Thread-safe. */
int mock_random_hex(const payd_host *h, char *out, size_t nbytes)
{
    uint8_t raw[32];

    if (nbytes > sizeof raw || h->random_bytes(raw, nbytes) != 0)
        return PAYD_E_INTERNAL;
    mock_hex(out, raw, nbytes);
    return PAYD_OK;
}

/* A fresh ref: `prefix` plus 24 random hex digits into `out`. */
int mock_new_ref(const payd_host *h, const char *prefix, char *out)
{
    char hex[2 * MOCK_REF_HEX / 2 + 1];
    int n;

    if (mock_random_hex(h, hex, MOCK_REF_HEX / 2) != PAYD_OK)
        return PAYD_E_INTERNAL;
    n = snprintf(out, MOCK_REF_SIZE, "%s%s", prefix, hex);
    return n > 0 && n < MOCK_REF_SIZE ? PAYD_OK : PAYD_E_INTERNAL;
}

char *mock_strdup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

void mock_result_free(mock_result *r)
{
    free(r->ref);
    free(r->url);
    free(r->failure_code);
    free(r->failure_message);
    free(r->raw);
    free(r->customer_ref);
    free(r->brand);
    free(r->last4);
    memset(r, 0, sizeof *r);
}

/*
 * Record an error outcome in `r`: its code, a decline code (or NULL) and a
 * message. The message must never carry card data or secrets.
 */
void mock_result_fail(mock_result *r, int rc, const char *failure_code,
                      const char *fmt, ...)
{
    va_list ap;

    r->rc = rc;
    snprintf(r->err_failure_code, sizeof r->err_failure_code, "%s",
             failure_code != NULL ? failure_code : "");
    va_start(ap, fmt);
    vsnprintf(r->err_message, sizeof r->err_message, fmt, ap);
    va_end(ap);
}

/* Deep copy for idempotency records. 0, or -1 on OOM (dst is then freed). */
static int mock_result_copy(mock_result *dst, const mock_result *src)
{
    *dst = *src;
    dst->ref = mock_strdup_or_null(src->ref);
    dst->url = mock_strdup_or_null(src->url);
    dst->failure_code = mock_strdup_or_null(src->failure_code);
    dst->failure_message = mock_strdup_or_null(src->failure_message);
    dst->raw = mock_strdup_or_null(src->raw);
    dst->customer_ref = mock_strdup_or_null(src->customer_ref);
    dst->brand = mock_strdup_or_null(src->brand);
    dst->last4 = mock_strdup_or_null(src->last4);
    if ((src->ref && !dst->ref) || (src->url && !dst->url) ||
        (src->failure_code && !dst->failure_code) ||
        (src->failure_message && !dst->failure_message) ||
        (src->raw && !dst->raw) || (src->customer_ref && !dst->customer_ref) ||
        (src->brand && !dst->brand) || (src->last4 && !dst->last4)) {
        mock_result_free(dst);
        return -1;
    }
    return 0;
}

static void mock_idem_free(void *p)
{
    mock_idem *rec = p;

    if (rec == NULL)
        return;
    mock_result_free(&rec->res);
    free(rec);
}

/* Forget the oldest idempotency records or counters past `max`. */
static void mock_make_room_locked(mock_map *m, size_t max)
{
    while (m->count >= max) {
        if (m == &mock_reg.idem)
            mock_idem_free(mock_map_evict(m, NULL, 0));
        else
            free(mock_map_evict(m, NULL, 0));
    }
}

/* ------------------------------------------------------------------------ */
/* Lifecycle and instances                                                  */
/* ------------------------------------------------------------------------ */

static void mock_registry_destroy_locked(void)
{
    mock_intents_destroy_locked();
    mock_methods_destroy_locked();
    mock_map_destroy(&mock_reg.idem, mock_idem_free);
    mock_map_destroy(&mock_reg.stats, free);
}

/*
 * Register a new instance with the provider. The first one creates the
 * registry and starts the webhook delivery thread. Returns 0, or
 * PAYD_E_NOMEM / PAYD_E_INTERNAL with e set. Called from init, alone.
 */
int mock_provider_acquire(mock_instance *inst, payd_error *e)
{
    int rc = PAYD_OK;

    pthread_mutex_lock(&mock_life_mu);
    pthread_mutex_lock(&mock_mu);
    if (mock_g.refs == 0) {
        uint64_t seed = 0;

        if (inst->h->random_bytes(&seed, sizeof seed) != 0) {
            rc = payd_fail(e, PAYD_E_INTERNAL, "mock: no random bytes");
            goto out;
        }
        if (mock_map_init(&mock_reg.intents, seed) != 0 ||
            mock_map_init(&mock_reg.refunds, seed) != 0 ||
            mock_map_init(&mock_reg.customers, seed) != 0 ||
            mock_map_init(&mock_reg.methods, seed) != 0 ||
            mock_map_init(&mock_reg.idem, seed) != 0 ||
            mock_map_init(&mock_reg.stats, seed) != 0) {
            mock_registry_destroy_locked();
            rc = payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
            goto out;
        }
        rc = mock_webhooks_start_locked(e);
        if (rc != PAYD_OK) {
            mock_registry_destroy_locked();
            goto out;
        }
    }
    mock_g.refs++;
    inst->next = mock_g.instances;
    mock_g.instances = inst;
out:
    pthread_mutex_unlock(&mock_mu);
    pthread_mutex_unlock(&mock_life_mu);
    return rc;
}

/*
 * Unregister an instance: wait until the delivery thread no longer uses its
 * host, and if it was the last, stop and join the thread and free the whole
 * registry. Called from fini, alone. The instance may be freed afterwards.
 */
void mock_provider_release(mock_instance *inst)
{
    mock_instance **pp;

    pthread_mutex_lock(&mock_life_mu);
    pthread_mutex_lock(&mock_mu);
    for (pp = &mock_g.instances; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            break;
        }
    }
    mock_webhooks_wait_idle_locked(inst);
    if (--mock_g.refs == 0) {
        mock_webhooks_stop_locked();
        mock_registry_destroy_locked();
    }
    pthread_mutex_unlock(&mock_mu);
    pthread_mutex_unlock(&mock_life_mu);
}

/* The live instance named `account`, or NULL. Webhooks about an intent go
 * through the instance that created it, looked up by name. */
mock_instance *mock_instance_find_locked(const char *account)
{
    mock_instance *inst;

    for (inst = mock_g.instances; inst != NULL; inst = inst->next)
        if (account != NULL && strcmp(inst->account, account) == 0)
            return inst;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                    */
/* ------------------------------------------------------------------------ */

/* The counters of `payment_id`, created when `create` (NULL if absent or
 * on OOM). */
mock_stats *mock_stats_get_locked(const char *payment_id, int create)
{
    mock_stats *st;

    if (payment_id == NULL || mock_reg.stats.buckets == NULL)
        return NULL;
    st = mock_map_get(&mock_reg.stats, payment_id);
    if (st != NULL || !create)
        return st;
    mock_make_room_locked(&mock_reg.stats, MOCK_MAX_STATS);
    st = calloc(1, sizeof *st);
    if (st != NULL && mock_map_put(&mock_reg.stats, payment_id, st) != 0) {
        free(st);
        st = NULL;
    }
    return st;
}

/* Count one call of `create` for `payment_id`, replays and faults
 * included. Takes mock_mu. */
void mock_stats_count_create_call(const char *payment_id)
{
    mock_stats *st;

    pthread_mutex_lock(&mock_mu);
    st = mock_stats_get_locked(payment_id, 1);
    if (st != NULL)
        st->create_calls++;
    pthread_mutex_unlock(&mock_mu);
}

/* Copy the counters of `payment_id` (zeros if unknown). Takes mock_mu. */
void mock_stats_read(const char *payment_id, mock_stats *out)
{
    const mock_stats *st;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&mock_mu);
    st = mock_stats_get_locked(payment_id, 0);
    if (st != NULL)
        *out = *st;
    pthread_mutex_unlock(&mock_mu);
}

/* ------------------------------------------------------------------------ */
/* Idempotency records                                                      */
/* ------------------------------------------------------------------------ */

/* Keys are scoped by account, like Stripe's per-account keys. Returns 0,
 * or -1 if the scoped key does not fit (the caller bounds both parts). */
static int mock_idem_scoped(char *out, size_t size, const char *account,
                            const char *key)
{
    int n = snprintf(out, size, "%s\x1f%s", account, key);

    return n > 0 && (size_t)n < size ? 0 : -1;
}

int mock_idem_lookup_locked(const char *account, const char *key,
                            const uint8_t fp[32], mock_result *out)
{
    char scoped[MOCK_ID_MAX + MOCK_KEY_MAX + 8];
    const mock_idem *rec;

    if (mock_idem_scoped(scoped, sizeof scoped, account, key) != 0)
        return 0;
    rec = mock_map_get(&mock_reg.idem, scoped);
    if (rec == NULL)
        return 0;
    if (memcmp(rec->fp, fp, 32) != 0)
        return -1;
    if (mock_result_copy(out, &rec->res) != 0)
        mock_result_fail(out, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return 1;
}

/* Keep a copy of `r` under the key; on OOM the record is simply not kept
 * (a retry then runs again, which the caller's state checks make safe). */
void mock_idem_store_locked(const char *account, const char *key,
                            const uint8_t fp[32], const mock_result *r)
{
    char scoped[MOCK_ID_MAX + MOCK_KEY_MAX + 8];
    mock_idem *rec;

    if (mock_idem_scoped(scoped, sizeof scoped, account, key) != 0)
        return;
    rec = calloc(1, sizeof *rec);
    if (rec == NULL)
        return;
    memcpy(rec->fp, fp, 32);
    if (mock_result_copy(&rec->res, r) != 0) {
        free(rec);
        return;
    }
    rec->res.lost = 0;
    mock_make_room_locked(&mock_reg.idem, MOCK_MAX_IDEMPOTENCY);
    if (mock_map_put(&mock_reg.idem, scoped, rec) != 0)
        mock_idem_free(rec);
}
