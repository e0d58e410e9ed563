/*
 * tests/fuzz/fuzz_cardguard.c - the PAN guard (server/cardguard.c), which
 * sees every query string and every JSON request body before a handler.
 *
 * Each input is used three ways:
 *   - as text: cardguard_text_has_pan with and without the test-card
 *     exception, and cardguard_is_test_card on a NUL-terminated copy;
 *   - as a JSON body, parsed the way http.c parses one (json_loadb with
 *     JSON_REJECT_DUPLICATES), then cardguard_json_has_pan with a full-size
 *     path buffer and with small ones (the dotted path is truncated);
 *   - against a simple reference scan: every text the guard passes must
 *     hold no Luhn-valid run of 13..19 contiguous digits that is not a
 *     test card (the guard also finds runs split by spaces and dashes, so
 *     the reference only checks one direction).
 */
#include <jansson.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardguard.h"

static int luhn(const char *d, size_t n)
{
    int sum = 0;

    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';

        if (i % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* 1 when `s` has a whole group of 13..19 digits (not part of a longer
 * group) that passes Luhn and is not an allowed test card. */
static int reference_has_pan(const char *s, size_t len, int allow)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;

        while (j < len && s[j] >= '0' && s[j] <= '9')
            j++;
        if (j - i >= 13 && j - i <= 19 && luhn(s + i, j - i)) {
            char digits[20];

            memcpy(digits, s + i, j - i);
            digits[j - i] = '\0';
            if (!(allow && cardguard_is_test_card(digits)))
                return 1;
        }
        i = j > i ? j : i + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char *copy = malloc(size + 1);
    char path[256], small[8], tiny[1];

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';

    /* Text: exact-size buffer, no terminator, so ASan sees any over-read. */
    char *exact = malloc(size ? size : 1);
    if (exact == NULL) {
        free(copy);
        return 0;
    }
    memcpy(exact, data, size);
    for (int allow = 0; allow <= 1; allow++) {
        int found = cardguard_text_has_pan(exact, size, allow);

        if (!found && reference_has_pan(s, size, allow)) {
            fprintf(stderr, "INVARIANT: cardguard_text_has_pan missed a "
                            "Luhn-valid digit run (allow_test_cards=%d)\n",
                    allow);
            abort();
        }
    }
    (void)cardguard_is_test_card(copy);
    free(exact);

    /* JSON, as http.c parses a request body. */
    json_t *doc = json_loadb(s, size, JSON_REJECT_DUPLICATES, NULL);
    if (doc != NULL) {
        int a = cardguard_json_has_pan(doc, 0, path, sizeof path);
        int b = cardguard_json_has_pan(doc, 1, path, sizeof path);
        int c = cardguard_json_has_pan(doc, 0, small, sizeof small);
        (void)cardguard_json_has_pan(doc, 1, tiny, sizeof tiny);

        if (memchr(path, '\0', sizeof path) == NULL ||
            memchr(small, '\0', sizeof small) == NULL || tiny[0] != '\0' ||
            a != c || (b && !a)) {
            fprintf(stderr, "INVARIANT: cardguard_json_has_pan path or "
                            "verdict inconsistent\n");
            abort();
        }
        json_decref(doc);
    }
    free(copy);
    return 0;
}
