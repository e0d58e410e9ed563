/*
 * tests/fuzz/fuzz_host.h - what tests/fuzz/host.c lends the module fuzz
 * targets (tests/fuzz/fuzz_<module>_*.c): the host table, its arenas and
 * clock, and the checks every target makes on what a module returns.
 *
 * Everything here is for one fuzzing process: libFuzzer calls a target on
 * one thread, and the host's settings (fuzz_host_set_http) are global.
 */
#ifndef PAYD_FUZZ_HOST_H
#define PAYD_FUZZ_HOST_H

#include <payd/module.h>

#include <stddef.h>
#include <stdint.h>

/* The host's `http`, as a target installs it. */
typedef int (*fuzz_http_fn)(const payd_host *h, const payd_http_request *req,
                            payd_http_response *res, payd_arena *a,
                            payd_error *e);

const payd_host *fuzz_host(void);
payd_arena *fuzz_arena_new(void);
void fuzz_arena_free(payd_arena *a);
/* Answer the module's `http` calls with `fn` (NULL: an empty 200). */
void fuzz_host_set_http(fuzz_http_fn fn);
void *fuzz_host_alloc(payd_arena *a, size_t size);
char *fuzz_host_strndup(payd_arena *a, const char *s, size_t n);
/* The fixed clock (seconds) the host answers `now` with. */
int64_t fuzz_host_now(void);

/* The module under test, linked into the target. */
const payd_module *payd_module_v1(void);

/* init the gateway module `mod` with the keys set by fake_config_set and
 * return its state; aborts, naming `target`, when it is not a gateway or
 * init fails (a target that cannot start must not pass). */
void *fuzz_gateway_start(const payd_module *mod, const char *target);

/* Read every byte of `s` (NULL is fine): ASan flags a string that is not a
 * live, terminated arena string. */
void fuzz_touch(const char *s);
/* fuzz_touch on every string of an event a webhook returned. */
void fuzz_touch_event(const payd_event *ev);

/* Abort, saying `what` with the mode, code and message, unless `ok`. */
void fuzz_invariant(int ok, const char *what, int mode, int rc,
                    const payd_error *e);

/* "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" into out: the
 * signature header of Stripe's scheme, which the mock copies. */
void fuzz_sign_t_v1(const char *secret, const char *body, size_t len,
                    long long t, char *out, size_t outsz);

/* Cut the first line of *rest (without its '\n', cut to linesz - 1 bytes)
 * into `line` and advance *rest past it: a raw header value before the
 * body. */
void fuzz_take_line(const char **rest, size_t *rest_len, char *line,
                    size_t linesz);

/* A malloc'd, NUL-terminated copy of the body, or NULL when it holds a NUL
 * byte (the host refuses those, as server/webhooks.c does) or on OOM. */
char *fuzz_body_copy(const char *rest, size_t len);

#endif /* PAYD_FUZZ_HOST_H */
