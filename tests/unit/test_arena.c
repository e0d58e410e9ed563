/*
 * test_arena.c - the per-request allocator (server/arena.c): alignment,
 * zeroing, large allocations, the hard cap, and the string helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static void test_allocations_are_16_byte_aligned(void **state)
{
    (void)state;
    arena *a = arena_new();
    assert_non_null(a);
    static const size_t sizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 1000, 4095, 20000, 1};
    for (int round = 0; round < 50; round++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = arena_alloc(a, sizes[i]);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 16, 0);
        }
    arena_free(a);
}

static void test_allocations_are_zeroed_even_after_neighbours_are_dirtied(void **state)
{
    (void)state;
    arena *a = arena_new();
    for (int i = 0; i < 2000; i++) {
        size_t n = (size_t)(i * 37 % 3000) + 1;
        unsigned char *p = arena_alloc(a, n);
        assert_non_null(p);
        assert_true(all_zero(p, n));
        memset(p, 0xA5, n); /* dirty it; the next allocation must not see this */
    }
    arena_free(a);
}

static void test_allocations_do_not_overlap(void **state)
{
    (void)state;
    enum { N = 5000 };
    arena *a = arena_new();
    unsigned char *ptrs[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)(i % 97) + 1;
        ptrs[i] = arena_alloc(a, lens[i]);
        assert_non_null(ptrs[i]);
        memset(ptrs[i], i & 0xff, lens[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < lens[i]; j++) assert_int_equal(ptrs[i][j], i & 0xff);
    arena_free(a);
}

static void test_large_allocation_is_usable_zeroed_and_counted(void **state)
{
    (void)state;
    arena *a = arena_new();
    assert_int_equal(arena_bytes(a), 0);
    unsigned char *small = arena_alloc(a, 10);
    assert_non_null(small);
    size_t before = arena_bytes(a);
    assert_true(before >= 10);

    size_t big_len = 3 * 1024 * 1024 + 5;
    unsigned char *big = arena_alloc(a, big_len);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    assert_true(all_zero(big, big_len));
    memset(big, 0x5A, big_len);
    assert_true(arena_bytes(a) >= before + big_len);

    /* Small allocations keep working after a large one, and the large one
     * is left intact. */
    char *after = arena_strdup(a, "still fine");
    assert_string_equal(after, "still fine");
    assert_int_equal(big[0], 0x5A);
    assert_int_equal(big[big_len - 1], 0x5A);
    arena_free(a);
}

static void test_allocation_past_the_cap_or_overflowing_fails_cleanly(void **state)
{
    (void)state;
    arena *a = arena_new();
    assert_null(arena_alloc(a, (size_t)300 * 1024 * 1024)); /* above the 256 MiB cap */
    assert_null(arena_alloc(a, SIZE_MAX));                  /* rounding would overflow */
    assert_null(arena_alloc(a, SIZE_MAX - 8));
    /* The arena still works. */
    char *p = arena_alloc(a, 32);
    assert_non_null(p);
    assert_true(all_zero(p, 32));
    arena_free(a);
}

static void test_null_arena_is_tolerated(void **state)
{
    (void)state;
    assert_null(arena_alloc(NULL, 8));
    assert_null(arena_strdup(NULL, "x"));
    assert_int_equal(arena_bytes(NULL), 0);
    arena_free(NULL);
}

static void test_zero_size_allocation_is_not_null(void **state)
{
    (void)state;
    arena *a = arena_new();
    assert_non_null(arena_alloc(a, 0));
    char *q = arena_alloc(a, 1);
    assert_non_null(q);
    assert_int_equal(q[0], 0);
    arena_free(a);
}

static void test_strdup_and_strndup_copy_and_terminate(void **state)
{
    (void)state;
    arena *a = arena_new();
    char src[] = "payment pay_123";
    char *d = arena_strdup(a, src);
    assert_string_equal(d, "payment pay_123");
    assert_ptr_not_equal(d, src);
    src[0] = 'X';
    assert_string_equal(d, "payment pay_123"); /* a copy, not a view */

    assert_string_equal(arena_strndup(a, "abcdef", 3), "abc");
    assert_string_equal(arena_strndup(a, "", 0), "");
    /* strndup copies exactly n bytes; the input need not be terminated. */
    char raw[4] = {'w', 'x', 'y', 'z'};
    assert_string_equal(arena_strndup(a, raw, 4), "wxyz");

    assert_null(arena_strdup(a, NULL));
    assert_null(arena_strndup(a, NULL, 3));
    assert_string_equal(arena_strdup(a, ""), "");
    arena_free(a);
}

static char *vsprintf_through(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *vsprintf_through(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vsprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

static void test_sprintf_formats_short_and_long_strings(void **state)
{
    (void)state;
    arena *a = arena_new();
    assert_string_equal(arena_sprintf(a, "%s-%d-%05.1f", "ord", 42, 3.14159), "ord-42-003.1");
    assert_string_equal(arena_sprintf(a, "%s", ""), "");
    assert_string_equal(vsprintf_through(a, "%c%c%lld", 'a', 'b', (long long)-9000000000LL),
                        "ab-9000000000");

    /* Longer than a chunk: formatted in full. */
    size_t n = 100000;
    char *fill = malloc(n + 1);
    assert_non_null(fill);
    memset(fill, 'q', n);
    fill[n] = '\0';
    char *s = arena_sprintf(a, "<%s>", fill);
    assert_non_null(s);
    assert_int_equal(strlen(s), n + 2);
    assert_int_equal(s[0], '<');
    assert_int_equal(s[n + 1], '>');
    assert_int_equal(s[n / 2], 'q');
    assert_int_equal((uintptr_t)s % 16, 0);
    free(fill);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_are_16_byte_aligned),
        cmocka_unit_test(test_allocations_are_zeroed_even_after_neighbours_are_dirtied),
        cmocka_unit_test(test_allocations_do_not_overlap),
        cmocka_unit_test(test_large_allocation_is_usable_zeroed_and_counted),
        cmocka_unit_test(test_allocation_past_the_cap_or_overflowing_fails_cleanly),
        cmocka_unit_test(test_null_arena_is_tolerated),
        cmocka_unit_test(test_zero_size_allocation_is_not_null),
        cmocka_unit_test(test_strdup_and_strndup_copy_and_terminate),
        cmocka_unit_test(test_sprintf_formats_short_and_long_strings),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
