/*
 * tests/unit/fake_sink.c - see fake_sink.h. Linked into every unit test
 * (the Makefile links tests/unit/fake_*.c), over the core's arena and host.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "fake_sink.h"

void fake_sink_start(fake_sink *s, const char *name, const char *const *extra)
{
    const char *build = getenv("PAYD_BUILD");
    char bin[4096], line[256] = "", want[96];
    const char *argv[16];
    int fds[2], n = 0;
    FILE *out;

    snprintf(bin, sizeof bin, "%s/fakes/%s", build ? build : "build", name);
    if (access(bin, X_OK) != 0)
        fail_msg("%s is not built (make test builds it)", bin);
    snprintf(s->dir, sizeof s->dir, "/tmp/payd-%s.XXXXXX", name);
    assert_non_null(mkdtemp(s->dir));
    argv[n++] = bin;
    argv[n++] = "0";
    argv[n++] = s->dir;
    argv[n++] = "--max-seconds";
    argv[n++] = "60";
    while (extra != NULL && *extra != NULL && n < 15)
        argv[n++] = *extra++;
    argv[n] = NULL;
    assert_int_equal(pipe(fds), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    snprintf(want, sizeof want, "%s listening on 127.0.0.1:%%d", name);
    if (fgets(line, sizeof line, out) == NULL || sscanf(line, want, &s->port) != 1)
        fail_msg("%s did not start: '%s'", name, line);
    fclose(out);
}

void fake_sink_stop(fake_sink *s)
{
    char cmd[512];
    int status;

    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, &status, 0);
        s->pid = 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    assert_int_equal(system(cmd), 0);
}

char *fake_sink_file(const fake_sink *s, int n, const char *ext, size_t *len)
{
    char path[512];
    FILE *f;
    char *data;
    long l;

    snprintf(path, sizeof path, "%s/%d.%s", s->dir, n, ext);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    l = ftell(f);
    rewind(f);
    data = calloc(1, (size_t)l + 1);
    if (data != NULL && fread(data, 1, (size_t)l, f) != (size_t)l) {
        data[0] = '\0';
        l = 0;
    }
    fclose(f);
    if (len != NULL)
        *len = (size_t)l;
    return data;
}

static payd_host fake_real_host;

void fake_real_http_bind(host_instance *instance)
{
    host_fill(&fake_real_host, instance);
}

int fake_real_http(const payd_host *h, const payd_http_request *req, payd_http_response *res,
                   payd_arena *a, payd_error *e)
{
    payd_arena *ra = arena_new();
    long status;
    int rc;

    (void)h;
    (void)a;
    rc = fake_real_host.http(&fake_real_host, req, res, ra, e);
    status = res->status;
    memset(res, 0, sizeof *res);
    res->struct_size = (uint32_t)sizeof *res;
    res->status = status;
    arena_free(ra);
    return rc;
}
