/*
 * tests/unit/assert_text.h - cmocka assertions on text a module produced
 * (request bodies, URLs, error messages): whether a needle is in it.
 *
 * Header-only (static inline), so a unit test that includes it after
 * <cmocka.h> needs nothing more from the Makefile. A failure names the
 * caller's file and line.
 */
#ifndef PAYD_TEST_ASSERT_TEXT_H
#define PAYD_TEST_ASSERT_TEXT_H

#include <string.h>

/* Fails unless `needle` occurs in `hay` (a NULL hay fails). */
#define assert_contains(hay, needle) assert_contains_at((hay), (needle), __FILE__, __LINE__)
/* Fails if `needle` occurs in `hay` (a NULL hay passes). */
#define assert_not_contains(hay, needle) assert_not_contains_at((hay), (needle), __FILE__, __LINE__)

static inline void assert_contains_at(const char *hay, const char *needle, const char *file, int line)
{
    if (hay == NULL || strstr(hay, needle) == NULL) {
        print_error("expected \"%s\" in \"%s\"\n", needle, hay ? hay : "(null)");
        _fail(file, line);
    }
}

static inline void assert_not_contains_at(const char *hay, const char *needle, const char *file, int line)
{
    if (hay != NULL && strstr(hay, needle) != NULL) {
        print_error("did not expect \"%s\" in \"%s\"\n", needle, hay);
        _fail(file, line);
    }
}

#endif /* PAYD_TEST_ASSERT_TEXT_H */
