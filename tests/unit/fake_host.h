/*
 * tests/unit/fake_host.h - a minimal payd host for module unit tests.
 *
 * It lends a module the v1.0 host services without a server: arenas are
 * lists of mallocs freed at once, crypto is OpenSSL, the clock can be
 * shifted, config comes from a small key/value table, and `http` records
 * every request and answers with a scripted status (200 by default), so a
 * module's background threads never touch the network.
 *
 * Everything here is thread-safe, because modules call the host from their
 * own threads (the mock's webhook delivery thread does).
 */
#ifndef PAYD_TEST_FAKE_HOST_H
#define PAYD_TEST_FAKE_HOST_H

#include <payd/module.h>

#include <stddef.h>
#include <stdint.h>

/* One recorded outbound request. */
typedef struct fake_http_call {
    char method[16];
    char url[512];
    char content_type[128];
    char signature[256];   /* the Mock-Signature header, "" if none */
    char *body;            /* NUL-terminated; owned by the caller of get */
    size_t body_len;
    int had_arena;         /* the module passed a non-NULL arena */
} fake_http_call;

/* Forget config, recorded calls, scripted statuses, logs and clock shift. */
void fake_host_reset(void);

const payd_host *fake_host(void);
const payd_config *fake_config(void);

/* Set (or with value NULL, remove) one config key. Strings are copied. */
void fake_config_set(const char *key, const char *value);

payd_arena *fake_arena_new(void);
void fake_arena_free(payd_arena *a);

/* Move the clock the module sees by `seconds` (cumulative). */
void fake_clock_shift(int64_t seconds);

/* The statuses the next `n` http calls answer with; then 200 again. A
 * status of 0 means "transport error" (PAYD_E_TRANSIENT). */
void fake_http_script(const long *statuses, size_t n);

/* How many http calls were made so far. */
size_t fake_http_count(void);

/* Copy call `i` into `out` (out->body is malloc'd: free it). 0 or -1. */
int fake_http_get(size_t i, fake_http_call *out);

/* Wait up to `timeout_ms` for a call whose body contains every one of the
 * `n` needles; copy it into `out` (free out->body). Returns its index or
 * -1 on timeout. */
long fake_http_wait_for(const char *const *needles, size_t n, int timeout_ms,
                        fake_http_call *out);

/* How many recorded calls have a body containing `needle`. */
size_t fake_http_count_containing(const char *needle);

/* 1 if any logged line contains `needle`. */
int fake_log_contains(const char *needle);

/* ------------------------------------------------------------------------ */
/* The module under test                                                    */
/* ------------------------------------------------------------------------ */

/* Load the module `name` ("stripe", "smtp", ...) exactly as payd does:
 * dlopen(RTLD_NOW | RTLD_LOCAL) of $PAYD_<NAME>_SO, else
 * $PAYD_BUILD/modules/<name>.so (what scripts/test.sh exports), else
 * build/modules/<name>.so from the repository root, then call its entry
 * symbol. *dl gets the handle for fake_module_unload. Returns the module's
 * descriptor (owned by the module), or NULL with the reason on stderr.
 * For a group setup: not thread-safe. */
const payd_module *fake_module_load(const char *name, void **dl);

/* Close a handle from fake_module_load (NULL is ignored). Sanitizer builds
 * (PAYD_KEEP_MODULES_MAPPED) keep it mapped, so leak reports can still
 * name the module's frames. */
void fake_module_unload(void *dl);

/* Start one instance of `mod` on `host` with the current fake config: *st
 * is set to NULL, then to the instance; *e is zeroed first and gets init's
 * message. Returns init's code. */
int fake_module_start(const payd_module *mod, const payd_host *host,
                      void **st, payd_error *e);

/* Stop the instance in *st, if any (fini), and set *st to NULL. */
void fake_module_stop(const payd_module *mod, void **st);

/* Stop the instance in *st, set `key`, value, ..., NULL over the current
 * config (a NULL value removes the key), and start it again on `host`.
 * Returns init's code; *e gets its message. */
int fake_module_restart_with(const payd_module *mod, const payd_host *host,
                             void **st, payd_error *e, const char *key, ...);

#endif /* PAYD_TEST_FAKE_HOST_H */
