/* arena.h - per-request bump allocator (the ABI's payd_arena). */
#ifndef PAYD_ARENA_H
#define PAYD_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "payd/module.h"

typedef payd_arena arena;

arena *arena_new(void);
void arena_free(arena *a);
void *arena_alloc(arena *a, size_t size);
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_sprintf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vsprintf(arena *a, const char *fmt, va_list ap);
size_t arena_bytes(const arena *a);

#endif
