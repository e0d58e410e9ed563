/*
 * tests/unit/fake_sink.h - end-to-end notifier tests: a fake receiver from
 * tests/fakes (smtp_sink, hook_receiver) run as a child process, and a
 * host whose http is server/host.c's real libcurl client.
 *
 * The receivers store what they accept as numbered files (1.eml, 1.http,
 * ...) in a directory the test owns. Assertions are cmocka's, so this is
 * for unit tests only (the fuzzing host does not link it).
 */
#ifndef PAYD_TEST_FAKE_SINK_H
#define PAYD_TEST_FAKE_SINK_H

#include <payd/module.h>

#include <stddef.h>
#include <sys/types.h>

#include "host.h"

/* A running receiver. */
typedef struct fake_sink {
    pid_t pid;      /* 0 when stopped */
    int port;       /* where it listens on 127.0.0.1 */
    char dir[256];  /* where it stores what it received */
} fake_sink;

/* Start $PAYD_BUILD/fakes/<name> (else build/fakes/<name>) on a free port,
 * storing into a new /tmp/payd-<name>.XXXXXX, stopping itself after 60 s,
 * with the `extra` arguments (NULL-terminated, may be NULL); waits for its
 * "<name> listening on 127.0.0.1:PORT" line. Fails the test otherwise. */
void fake_sink_start(fake_sink *s, const char *name, const char *const *extra);

/* Stop it (SIGTERM, then wait) and remove its directory. */
void fake_sink_stop(fake_sink *s);

/* The n-th stored file (<dir>/<n>.<ext>), malloc'd and NUL-terminated
 * (caller frees); its length into *len unless len is NULL. NULL when the
 * receiver has not stored it. */
char *fake_sink_file(const fake_sink *s, int n, const char *ext, size_t *len);

/* Bind server/host.c's client to `instance` for fake_real_http; call once
 * per group after host_global_init. Not thread-safe. */
void fake_real_http_bind(host_instance *instance);

/* A payd_host.http that sends through that real libcurl client with an
 * arena of its own; only the status comes back (the body and headers are
 * freed with that arena), which is all a notifier reads. Thread-safe. */
int fake_real_http(const payd_host *h, const payd_http_request *req, payd_http_response *res,
                   payd_arena *a, payd_error *e);

#endif /* PAYD_TEST_FAKE_SINK_H */
