/*
 * tests/fuzz/fuzz_config.c - payd.conf loading (server/config.c): the line
 * reader, inih, section and key checks, typed values, schedules, routing,
 * and env:NAME / file:PATH secrets.
 *
 * The input is the whole config file. It is written to a memfd and loaded
 * through /proc/self/fd/N, so no disk is touched. Every result is freed
 * (config_free, config_errors_free): LeakSanitizer reports what is not.
 *
 * For the secrets, the environment holds PAYD_FUZZ_SECRET, PAYD_FUZZ_EMPTY
 * (set but empty) and PAYD_FUZZ_LONG (9000 bytes), and file:
 * /tmp/payd-fuzz-secret (a short line), /tmp/payd-fuzz-secret-long (9000
 * bytes, no newline) and /tmp/payd-fuzz-secret-crlf exist; the seeds name
 * them. The fuzzer can name any other path: scripts/fuzz.sh runs it with
 * stdin from /dev/null, so file:/dev/stdin does not block.
 *
 * After a load, every section's entries and the schedules are read back
 * (config_section_find, config_entry_find, config_schedule_step), as the
 * module loader and the janitor do.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

static int fd = -1;
static char path[64];

static void write_file(const char *name, const char *text, size_t len)
{
    FILE *f = fopen(name, "w");

    if (f != NULL) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char big[9001];

    (void)argc, (void)argv;
    fd = memfd_create("payd-fuzz.conf", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    memset(big, 'k', sizeof big - 1);
    setenv("PAYD_FUZZ_SECRET", "s3cr3t-from-env", 1);
    setenv("PAYD_FUZZ_EMPTY", "", 1);
    setenv("PAYD_FUZZ_LONG", big, 1);
    write_file("/tmp/payd-fuzz-secret", "s3cr3t-from-file\n", 17);
    write_file("/tmp/payd-fuzz-secret-long", big, sizeof big - 1);
    write_file("/tmp/payd-fuzz-secret-crlf", "line1\r\nline2\r\n\r\n", 16);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config cfg;
    config_errors errs = {0};

    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    int rc = config_load(path, &cfg, &errs);

    if ((rc == 0) != (errs.count == 0)) {
        fprintf(stderr, "INVARIANT: config_load returned %d with %zu errors\n",
                rc, errs.count);
        abort();
    }
    for (size_t i = 0; i < errs.count; i++)
        if (errs.items[i] == NULL || strlen(errs.items[i]) == (size_t)-1)
            abort();
    for (size_t i = 0; i < cfg.section_count; i++) {
        const config_section *s = &cfg.sections[i];

        if (config_section_find(&cfg, s->name) == NULL)
            abort();
        for (size_t j = 0; j < s->count; j++)
            if (config_entry_find(s, s->entries[j].key) == NULL ||
                strlen(s->entries[j].value) == (size_t)-1)
                abort();
    }
    for (size_t i = 0; i < cfg.route_count; i++)
        if (strlen(cfg.routes[i].currency) != 3)
            abort();
    for (int a = 0; a < 12; a++) {
        if (config_schedule_step(cfg.janitor_schedule, a) < 1 ||
            config_schedule_step(cfg.outbox_schedule, a) < 1)
            abort();
    }
    config_free(&cfg);
    config_errors_free(&errs);
    return 0;
}
