/* host.h - the services payd lends to modules (payd_host). */
#ifndef PAYD_HOST_H
#define PAYD_HOST_H

#include <stdint.h>

#include "config.h"
#include "payd/module.h"
#include "redis.h"

/* What a module's config_get sees: its own section plus read-only keys. */
struct payd_config {
    config_section *section;
    const char *instance;
    char *public_url;
    char *webhook_url;
};

/* Per-instance host data, reachable from payd_host.host_private. */
typedef struct host_instance {
    char log_name[64];   /* "gateway.main" */
    char cache_prefix[80];
} host_instance;

/* Process-wide setup, once, before any module loads. */
void host_global_init(redis *r, int http_timeout_ms);
/* [server] http_ca_file: a PEM bundle libcurl trusts for outbound https in
 * addition to the system store, or NULL. Set once, before modules load. */
int host_set_http_ca_file(const char *path);
void host_global_fini(void);

/* Fills `h` with the v1 services for one instance; `hi` must outlive it. */
void host_fill(payd_host *h, host_instance *hi);

/* The host clock, shifted in tests ([server] test_mode). */
int64_t host_now_ms(void);
void host_clock_set_offset_ms(int64_t offset_ms);

/* Shared crypto helpers the core uses too. */
void host_sha256(const void *data, size_t len, uint8_t out[32]);
void host_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                      uint8_t out[32]);
int host_equal_ct(const void *a, const void *b, size_t len);
int host_random_bytes(void *buf, size_t len);
void host_hex(const uint8_t *data, size_t len, char *out); /* out: 2*len+1 */
/* Exactly 2*n lower- or upper-case hex digits into n bytes: 0, or -1. */
int host_unhex(const char *hex, uint8_t *out, size_t n);

#endif
