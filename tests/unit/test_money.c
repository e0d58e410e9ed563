/*
 * test_money.c - currencies and amounts (server/money.c): the minor-unit
 * exponent of ISO 4217 codes, normalizing what clients send, and
 * formatting integer minor units as decimal strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "money.h"

static void expect_exponent(const char *code, int want)
{
    int got = money_exponent(code);
    if (got != want) {
        print_error("money_exponent(\"%s\") = %d, expected %d\n", code ? code : "(null)", got, want);
        fail();
    }
}

static void test_two_decimal_currencies_have_exponent_2(void **state)
{
    (void)state;
    static const char *const codes[] = {"USD", "EUR", "GBP", "CHF", "CAD", "AUD", "CNY", "INR", "BRL", "MXN",
                                        "SEK", "NOK", "DKK", "PLN", "ZAR", "SGD", "HKD", "NZD", "AED", "TRY"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) expect_exponent(codes[i], 2);
}

static void test_zero_decimal_currencies_have_exponent_0(void **state)
{
    (void)state;
    static const char *const codes[] = {"JPY", "KRW", "VND", "CLP", "XOF", "XAF", "XPF",
                                        "PYG", "UGX", "RWF", "ISK", "BIF", "DJF", "GNF", "KMF", "VUV"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) expect_exponent(codes[i], 0);
}

static void test_three_decimal_currencies_have_exponent_3(void **state)
{
    (void)state;
    static const char *const codes[] = {"KWD", "BHD", "JOD", "OMR", "TND", "IQD", "LYD"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) expect_exponent(codes[i], 3);
}

static void test_four_decimal_units_of_account_have_exponent_4(void **state)
{
    (void)state;
    expect_exponent("CLF", 4);
    expect_exponent("UYW", 4);
}

static void test_unknown_or_malformed_codes_are_minus_1(void **state)
{
    (void)state;
    static const char *const codes[] = {"XXX", "ABC", "ZZZ", "US",  "USDD", "",    "usd", "Usd",
                                        "U$D", "US ", " US", "123", "XTS", "JP",  "JPYY", "EU"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) expect_exponent(codes[i], -1);
    expect_exponent(NULL, -1);
    /* A code that is a prefix or suffix of a listed one is not listed. */
    expect_exponent("SD", -1);
    expect_exponent("USDJPY", -1);
}

static void test_normalize_upper_cases_known_codes(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"usd", "USD"}, {"Jpy", "JPY"}, {"kWd", "KWD"}, {"EUR", "EUR"}, {"bhd", "BHD"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char out[4] = "???";
        assert_int_equal(money_currency_normalize(ok[i].in, out), 0);
        assert_string_equal(out, ok[i].out);
    }
    static const char *const bad[] = {"xxx", "us", "usdd", "", "1sd", "u d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[4];
        assert_int_equal(money_currency_normalize(bad[i], out), -1);
    }
    char out[4];
    assert_int_equal(money_currency_normalize(NULL, out), -1);
}

static void expect_format(int64_t amount, const char *currency, const char *want)
{
    char buf[64];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(money_format(amount, currency, buf, sizeof buf), 0);
    if (strcmp(buf, want) != 0) {
        print_error("money_format(%lld, %s) = \"%s\", expected \"%s\"\n", (long long)amount, currency, buf, want);
        fail();
    }
}

static void test_format_places_the_decimal_point_by_exponent(void **state)
{
    (void)state;
    expect_format(123456, "USD", "1234.56");
    expect_format(5, "USD", "0.05");
    expect_format(50, "USD", "0.50");
    expect_format(0, "USD", "0.00");
    expect_format(100, "EUR", "1.00");
    expect_format(1000, "JPY", "1000");
    expect_format(0, "JPY", "0");
    expect_format(50000, "KRW", "50000");
    expect_format(123456, "KWD", "123.456");
    expect_format(1, "KWD", "0.001");
    expect_format(1000, "BHD", "1.000");
    expect_format(12345, "CLF", "1.2345");
}

static void test_format_handles_negative_and_extreme_amounts(void **state)
{
    (void)state;
    expect_format(-150, "USD", "-1.50");
    expect_format(-1, "KWD", "-0.001");
    expect_format(-7, "JPY", "-7");
    expect_format(INT64_MAX, "USD", "92233720368547758.07");
    expect_format(INT64_MIN, "USD", "-92233720368547758.08");
    expect_format(INT64_MAX, "JPY", "9223372036854775807");
    expect_format(INT64_MIN, "KWD", "-9223372036854775.808");
}

static void test_format_refuses_unknown_currency(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(money_format(100, "XXX", buf, sizeof buf), -1);
    assert_int_equal(money_format(100, "usd", buf, sizeof buf), -1);
    assert_int_equal(money_format(100, NULL, buf, sizeof buf), -1);
}

static void test_format_never_writes_past_a_small_buffer(void **state)
{
    (void)state;
    /* ASan would report an overflow; the result is always terminated. */
    for (size_t len = 1; len <= 8; len++) {
        char *buf = malloc(len);
        assert_non_null(buf);
        money_format(123456789, "USD", buf, len);
        assert_true(strlen(buf) < len);
        assert_int_equal(strncmp(buf, "1234567.89", strlen(buf)), 0);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_decimal_currencies_have_exponent_2),
        cmocka_unit_test(test_zero_decimal_currencies_have_exponent_0),
        cmocka_unit_test(test_three_decimal_currencies_have_exponent_3),
        cmocka_unit_test(test_four_decimal_units_of_account_have_exponent_4),
        cmocka_unit_test(test_unknown_or_malformed_codes_are_minus_1),
        cmocka_unit_test(test_normalize_upper_cases_known_codes),
        cmocka_unit_test(test_format_places_the_decimal_point_by_exponent),
        cmocka_unit_test(test_format_handles_negative_and_extreme_amounts),
        cmocka_unit_test(test_format_refuses_unknown_currency),
        cmocka_unit_test(test_format_never_writes_past_a_small_buffer),
    };
    return cmocka_run_group_tests_name("money", tests, NULL, NULL);
}
