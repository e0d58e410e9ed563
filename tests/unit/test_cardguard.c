/*
 * test_cardguard.c - the PAN guard (server/cardguard.c): which digit runs
 * count as card numbers (13 to 19 digits, Luhn-valid, single spaces or
 * dashes between digits), the mock's test-card allowlist, and the dotted
 * path of the offending field in a JSON document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cardguard.h"

static int has_pan(const char *s, int allow_test_cards)
{
    return cardguard_text_has_pan(s, strlen(s), allow_test_cards);
}

static void expect_pan(const char *s, int allow, int want)
{
    int got = has_pan(s, allow);
    if (got != want) {
        print_error("cardguard_text_has_pan(\"%s\", allow_test_cards=%d) = %d, expected %d\n", s, allow, got, want);
        fail();
    }
}

/* Fills `out` with an n-digit number starting with `prefix` whose Luhn
 * check digit is right (valid) or off by one (invalid). */
static void make_number(char *out, size_t n, const char *prefix, int valid)
{
    size_t p = strlen(prefix);
    memcpy(out, prefix, p);
    for (size_t i = p; i < n - 1; i++) out[i] = (char)('0' + (i * 7 + 3) % 10);
    out[n - 1] = '0';
    out[n] = '\0';
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = out[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
    }
    int check = (10 - sum % 10) % 10;
    if (!valid) check = (check + 1) % 10;
    out[n - 1] = (char)('0' + check);
}

static void test_luhn_valid_16_digit_numbers_are_flagged(void **state)
{
    (void)state;
    expect_pan("4111111111111111", 0, 1);
    expect_pan("5500000000000004", 0, 1);
    expect_pan("6011111111111117", 0, 1);
    expect_pan("378282246310005", 0, 1); /* 15-digit Amex */
}

static void test_spaces_and_dashes_between_digits_are_still_a_card_number(void **state)
{
    (void)state;
    expect_pan("4111 1111 1111 1111", 0, 1);
    expect_pan("4111-1111-1111-1111", 0, 1);
    expect_pan("4111-1111 1111-1111", 0, 1);
    expect_pan("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", 0, 1);
    expect_pan("3782 822463 10005", 0, 1);
}

static void test_card_number_inside_text_is_flagged(void **state)
{
    (void)state;
    expect_pan("my card is 4111111111111111, thanks", 0, 1);
    expect_pan("card:4111-1111-1111-1111.", 0, 1);
    expect_pan("order 12, card 5500 0000 0000 0004 exp", 0, 1);
}

static void test_luhn_invalid_numbers_pass(void **state)
{
    (void)state;
    expect_pan("4111111111111112", 0, 0);
    expect_pan("4111 1111 1111 1112", 0, 0);
    expect_pan("1234567890123456", 0, 0);
    char n[24];
    for (size_t len = 13; len <= 19; len++) {
        make_number(n, len, "4", 0);
        expect_pan(n, 0, 0);
    }
}

static void test_13_to_19_digit_luhn_valid_runs_are_flagged(void **state)
{
    (void)state;
    char n[24];
    for (size_t len = 13; len <= 19; len++) {
        make_number(n, len, "4", 1);
        expect_pan(n, 0, 1);
    }
}

static void test_12_and_20_digit_runs_are_not_flagged(void **state)
{
    (void)state;
    char n[32];
    make_number(n, 12, "4", 1);
    expect_pan(n, 0, 0);
    make_number(n, 20, "4", 1);
    expect_pan(n, 0, 0);
    /* A 20-digit reference that contains a valid 16-digit prefix is one run. */
    expect_pan("41111111111111110000", 0, 0);
    expect_pan("1234 5678 9012", 0, 0);
    /* A very long run is bounded and not flagged. */
    char longrun[1001];
    memset(longrun, '4', 1000);
    longrun[1000] = '\0';
    expect_pan(longrun, 0, 0);
}

static void test_double_separators_and_other_characters_end_a_run(void **state)
{
    (void)state;
    expect_pan("4111  1111  1111  1111", 0, 0);
    expect_pan("4111--1111--1111--1111", 0, 0);
    expect_pan("4111.1111.1111.1111", 0, 0);
    expect_pan("4111/1111/1111/1111", 0, 0);
}

static void test_card_number_followed_by_expiry_or_cvc_is_still_flagged(void **state)
{
    (void)state;
    /* How people paste card data: number, expiry, CVC. The digits after a
     * single space must not hide the number before them. */
    expect_pan("4111 1111 1111 1111 12/25", 0, 1);
    expect_pan("4111111111111111 123", 0, 1);
    expect_pan("ref 7 4111111111111111", 0, 1);
}

static void test_len_bounds_the_scan(void **state)
{
    (void)state;
    const char *s = "4111111111111111";
    assert_int_equal(cardguard_text_has_pan(s, 16, 0), 1);
    assert_int_equal(cardguard_text_has_pan(s, 12, 0), 0);
    assert_int_equal(cardguard_text_has_pan(s, 0, 0), 0);
    /* Not NUL-terminated: only len bytes are read (ASan checks). */
    char *heap = malloc(16);
    assert_non_null(heap);
    memcpy(heap, s, 16);
    assert_int_equal(cardguard_text_has_pan(heap, 16, 0), 1);
    memcpy(heap, "4111 1111 1111 1", 16);
    assert_int_equal(cardguard_text_has_pan(heap, 16, 0), 0);
    free(heap);
}

static void test_mock_test_cards_pass_only_when_allowed(void **state)
{
    (void)state;
    static const char *const cards[] = {"4242424242424242", "5555555555554444", "4000000000000002",
                                        "4000000000009995", "4000000000000069", "4000002760003184"};
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        expect_pan(cards[i], 0, 1);
        expect_pan(cards[i], 1, 0);
        assert_int_equal(cardguard_is_test_card(cards[i]), 1);
    }
    expect_pan("4242 4242 4242 4242", 1, 0);
    expect_pan("4242-4242-4242-4242", 1, 0);
    /* The allowlist is exact: other valid numbers stay refused. */
    expect_pan("4111111111111111", 1, 1);
    expect_pan("test 4242424242424242 and 4111111111111111", 1, 1);
}

static void test_is_test_card_accepts_separators_and_nothing_else(void **state)
{
    (void)state;
    assert_int_equal(cardguard_is_test_card("4242 4242 4242 4242"), 1);
    assert_int_equal(cardguard_is_test_card("4242-4242-4242-4242"), 1);
    assert_int_equal(cardguard_is_test_card("4111111111111111"), 0);
    assert_int_equal(cardguard_is_test_card("pm_card_visa"), 0);
    assert_int_equal(cardguard_is_test_card("card 4242424242424242"), 0);
    assert_int_equal(cardguard_is_test_card("42424242424242424"), 0);
    assert_int_equal(cardguard_is_test_card("424242424242424"), 0);
    assert_int_equal(cardguard_is_test_card(""), 0);
    char longrun[200];
    memset(longrun, '4', sizeof longrun - 1);
    longrun[sizeof longrun - 1] = '\0';
    assert_int_equal(cardguard_is_test_card(longrun), 0);
}

static void expect_json(const char *text, int allow, int want, const char *want_path)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    assert_non_null(doc);
    char path[256];
    memset(path, 'x', sizeof path);
    int got = cardguard_json_has_pan(doc, allow, path, sizeof path);
    json_decref(doc);
    if (got != want || (want && strcmp(path, want_path) != 0)) {
        print_error("%s: got %d at \"%s\", expected %d at \"%s\"\n", text, got, got ? path : "", want,
                    want ? want_path : "");
        fail();
    }
    if (!want) assert_string_equal(path, "");
}

static void test_json_walk_names_the_first_offending_field(void **state)
{
    (void)state;
    expect_json("{\"items\":[{\"name\":\"ok\"},{\"name\":\"4111 1111 1111 1111\"}]}", 0, 1, "items.1.name");
    expect_json("{\"metadata\":{\"note\":\"5500-0000-0000-0004\"}}", 0, 1, "metadata.note");
    expect_json("{\"a\":{\"b\":{\"c\":[1,2,{\"d\":\"x 4111111111111111\"}]}}}", 0, 1, "a.b.c.2.d");
    expect_json("{\"n\":4111111111111111}", 0, 1, "n");
    expect_json("{\"list\":[\"4111111111111111\"]}", 0, 1, "list.0");
    expect_json("{\"payment_method\":\"4242424242424242\"}", 0, 1, "payment_method");
    expect_json("{\"payment_method\":\"4242424242424242\"}", 1, 0, NULL);
    expect_json("{\"note\":\"4111111111111112\",\"n\":123456789012,\"ok\":true,\"x\":null,\"f\":1.5}", 0, 0, NULL);
    expect_json("{}", 0, 0, NULL);
    char path[8] = "junk";
    assert_int_equal(cardguard_json_has_pan(NULL, 0, path, sizeof path), 0);
    assert_string_equal(path, "");
}

static void test_json_walk_truncates_a_long_path_safely(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"a_rather_long_key\":{\"another_long_key\":[\"4111111111111111\"]}}", 0, NULL);
    assert_non_null(doc);
    for (size_t len = 1; len <= 12; len++) {
        char *path = malloc(len);
        assert_non_null(path);
        assert_int_equal(cardguard_json_has_pan(doc, 0, path, len), 1);
        assert_true(strlen(path) < len);
        free(path);
    }
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luhn_valid_16_digit_numbers_are_flagged),
        cmocka_unit_test(test_spaces_and_dashes_between_digits_are_still_a_card_number),
        cmocka_unit_test(test_card_number_inside_text_is_flagged),
        cmocka_unit_test(test_luhn_invalid_numbers_pass),
        cmocka_unit_test(test_13_to_19_digit_luhn_valid_runs_are_flagged),
        cmocka_unit_test(test_12_and_20_digit_runs_are_not_flagged),
        cmocka_unit_test(test_double_separators_and_other_characters_end_a_run),
        cmocka_unit_test(test_card_number_followed_by_expiry_or_cvc_is_still_flagged),
        cmocka_unit_test(test_len_bounds_the_scan),
        cmocka_unit_test(test_mock_test_cards_pass_only_when_allowed),
        cmocka_unit_test(test_is_test_card_accepts_separators_and_nothing_else),
        cmocka_unit_test(test_json_walk_names_the_first_offending_field),
        cmocka_unit_test(test_json_walk_truncates_a_long_path_safely),
    };
    return cmocka_run_group_tests_name("cardguard", tests, NULL, NULL);
}
