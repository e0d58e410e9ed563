/*
 * cardguard.c - the PAN guard.
 *
 * payd never accepts, stores or logs a card number: card data goes from the
 * browser straight to the provider. Every JSON request body is walked here
 * before a handler sees it, and any string (or integer) field that holds a
 * Luhn-valid run of 13 to 19 digits is refused with 400
 * card_data_not_allowed. The only exception is the mock gateway's published
 * test cards, and only on requests that target a mock instance.
 * Pure functions; thread-safe.
 */
#include "cardguard.h"

#include <stdio.h>
#include <string.h>

static const char *const test_cards[] = {
    "4242424242424242", "5555555555554444", "4000000000000002", "4000000000009995",
    "4000000000000069", "4000002760003184", NULL};

static int luhn_valid(const char *digits, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static int digits_are_test_card(const char *digits)
{
    for (int i = 0; test_cards[i]; i++)
        if (strcmp(digits, test_cards[i]) == 0) return 1;
    return 0;
}

int cardguard_is_test_card(const char *s)
{
    char digits[24];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (n + 1 >= sizeof digits) return 0;
            digits[n++] = *p;
        } else if (*p != ' ' && *p != '-') {
            return 0;
        }
    }
    digits[n] = '\0';
    return digits_are_test_card(digits);
}

/*
 * Scans `s` for card numbers. Digits form groups; groups joined by single
 * spaces or dashes form a run ("4111 1111 1111 1111 12" is one run of five
 * groups). Every span of whole adjacent groups whose digits number 13 to 19
 * is checked with Luhn, so a card number followed by an expiry or CVC is
 * still found, while a long reference number in one group is not a card.
 * O(len * 19), no allocation.
 */
int cardguard_text_has_pan(const char *s, size_t len, int allow_test_cards)
{
    for (size_t i = 0; i < len; i++) {
        /* Only a group start can start a card number. */
        if (s[i] < '0' || s[i] > '9' || (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')) continue;
        char candidate[20];
        size_t n = 0;
        for (size_t k = i; k < len && n <= 19; k++) {
            if (s[k] >= '0' && s[k] <= '9') {
                if (n == 19) {
                    n++; /* too long: this start cannot be a card number */
                    break;
                }
                candidate[n++] = s[k];
                int group_ends = k + 1 == len || s[k + 1] < '0' || s[k + 1] > '9';
                if (group_ends && n >= 13) {
                    candidate[n] = '\0';
                    if (luhn_valid(candidate, n) && !(allow_test_cards && digits_are_test_card(candidate)))
                        return 1;
                }
            } else if (!((s[k] == ' ' || s[k] == '-') && k + 1 < len && s[k + 1] >= '0' && s[k + 1] <= '9')) {
                break; /* the run ends */
            }
        }
    }
    return 0;
}

static int walk(json_t *v, int allow, char *path, size_t path_len, size_t used)
{
    if (json_is_string(v))
        return cardguard_text_has_pan(json_string_value(v), json_string_length(v), allow);
    if (json_is_integer(v)) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return cardguard_text_has_pan(buf, (size_t)n, allow);
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            int n = snprintf(path + used, path_len - used, "%s%s", used ? "." : "", key);
            /* A key is stored like a value (metadata): check it too. */
            if (cardguard_text_has_pan(key, strlen(key), allow)) return 1;
            size_t next = used + (n > 0 ? (size_t)n : 0);
            if (next >= path_len) next = path_len - 1;
            if (walk(child, allow, path, path_len, next)) return 1;
            path[used] = '\0';
        }
        return 0;
    }
    if (json_is_array(v)) {
        size_t idx;
        json_t *child;
        json_array_foreach(v, idx, child) {
            int n = snprintf(path + used, path_len - used, "%s%zu", used ? "." : "", idx);
            size_t next = used + (n > 0 ? (size_t)n : 0);
            if (next >= path_len) next = path_len - 1;
            if (walk(child, allow, path, path_len, next)) return 1;
            path[used] = '\0';
        }
    }
    return 0;
}

int cardguard_json_has_pan(json_t *doc, int allow_test_cards, char *path, size_t path_len)
{
    if (path_len) path[0] = '\0';
    return doc ? walk(doc, allow_test_cards, path, path_len, 0) : 0;
}
