/*
 * test_report_range.c - the dates and ranges of reports and reconciliation
 * (server/reports.c): YYYY-MM-DD and RFC 3339 in, microseconds since the
 * epoch out, half-open ranges bounded by [admin] report_max_days.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reports.h"

#define DAY_US (86400LL * 1000000LL)

static void expect_time(const char *text, long long want_us)
{
    int64_t got = 0;
    if (reports_parse_time(text, &got) != 0 || got != want_us) {
        print_error("reports_parse_time(\"%s\") = %lld, expected %lld\n", text, (long long)got, want_us);
        fail();
    }
}

static void expect_refused(const char *text)
{
    int64_t got = 0;
    if (reports_parse_time(text, &got) != -1) {
        print_error("reports_parse_time(\"%s\") accepted it as %lld\n", text, (long long)got);
        fail();
    }
}

static void test_a_date_is_midnight_utc(void **state)
{
    (void)state;
    expect_time("1970-01-01", 0);
    expect_time("1970-01-02", DAY_US);
    expect_time("2024-02-29", 1709164800LL * 1000000LL);
    expect_time("2026-11-22", 1795305600LL * 1000000LL);
}

static void test_rfc3339_honours_offsets_and_keeps_microseconds(void **state)
{
    (void)state;
    expect_time("2026-11-22T00:00:00Z", 1795305600LL * 1000000LL);
    expect_time("2026-11-22t00:00:00z", 1795305600LL * 1000000LL);
    expect_time("2026-11-22T02:00:00+02:00", 1795305600LL * 1000000LL);
    expect_time("2026-11-21T19:30:00-04:30", 1795305600LL * 1000000LL);
    expect_time("1970-01-01T00:00:01.5Z", 1500000);
    expect_time("1970-01-01T00:00:00.000001Z", 1);
    /* Digits past the microsecond are dropped, not rounded. */
    expect_time("1970-01-01T00:00:00.123456789Z", 123456);
}

static void test_malformed_or_impossible_times_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "2026", "2026-11", "2026-1-01", "2026-13-01", "2026-00-10", "2026-02-29", "2025-04-31",
        "1969-12-31", "26-11-22", "2026-11-22T", "2026-11-22T10:00Z", "2026-11-22T10:00:00",
        "2026-11-22T24:00:00Z", "2026-11-22T10:60:00Z", "2026-11-22T10:00:60Z", "2026-11-22 10:00:00Z",
        "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00+2:00", "2026-11-22T10:00:00+24:00",
        "2026-11-22T10:00:00Zjunk", "2026-11-22junk", " 2026-11-22", "2026-11-22T10:00:00.1234567890Z",
        "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_refused(bad[i]);
    int64_t v;
    assert_int_equal(reports_parse_time(NULL, &v), -1);
}

static void test_a_range_is_checked_and_described(void **state)
{
    (void)state;
    config cfg = {.report_max_days = 31};
    report_range rg;
    fault f;
    assert_int_equal(reports_range(&cfg, "2026-01-01", "2026-02-01", &rg, &f), 0);
    assert_string_equal(rg.from_text, "2026-01-01T00:00:00Z");
    assert_string_equal(rg.to_text, "2026-02-01T00:00:00Z");
    assert_int_equal(rg.to_us - rg.from_us, 31 * DAY_US);
    assert_int_equal(strtoll(rg.from_param, NULL, 10), rg.from_us);
    /* An empty range is fine; microseconds show only when there are some. */
    assert_int_equal(reports_range(&cfg, "2026-01-01T00:00:00.25Z", "2026-01-01T00:00:00.25Z", &rg, &f), 0);
    assert_string_equal(rg.from_text, "2026-01-01T00:00:00.250000Z");

    assert_int_equal(reports_range(&cfg, "2026-01-01", "2026-02-01T00:00:00.000001Z", &rg, &f), -1);
    assert_int_equal(f.status, 400);
    assert_string_equal(f.code, "range_too_large");
    assert_string_equal(f.param, "to");
    assert_int_equal(reports_range(&cfg, "2026-01-02", "2026-01-01", &rg, &f), -1);
    assert_string_equal(f.code, "range_invalid");
    assert_string_equal(f.param, "from");
    assert_int_equal(reports_range(&cfg, NULL, "2026-01-01", &rg, &f), -1);
    assert_string_equal(f.code, "parameter_missing");
    assert_string_equal(f.param, "from");
    assert_int_equal(reports_range(&cfg, "2026-01-01", NULL, &rg, &f), -1);
    assert_string_equal(f.param, "to");
    assert_int_equal(reports_range(&cfg, "2026-01-01", "soon", &rg, &f), -1);
    assert_string_equal(f.code, "parameter_invalid");
    assert_string_equal(f.param, "to");
}

static void test_group_by_is_day_gateway_or_currency(void **state)
{
    (void)state;
    assert_true(reports_group_by_valid("day"));
    assert_true(reports_group_by_valid("gateway"));
    assert_true(reports_group_by_valid("currency"));
    assert_false(reports_group_by_valid("week"));
    assert_false(reports_group_by_valid("Day"));
    assert_false(reports_group_by_valid(""));
    assert_false(reports_group_by_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_date_is_midnight_utc),
        cmocka_unit_test(test_rfc3339_honours_offsets_and_keeps_microseconds),
        cmocka_unit_test(test_malformed_or_impossible_times_are_refused),
        cmocka_unit_test(test_a_range_is_checked_and_described),
        cmocka_unit_test(test_group_by_is_day_gateway_or_currency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
