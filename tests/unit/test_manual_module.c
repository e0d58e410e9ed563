/*
 * tests/unit/test_manual_module.c - the manual gateway, driven through its
 * ABI.
 *
 * The module is dlopen'ed exactly as payd loads it (PAYD_MANUAL_SO, else
 * $PAYD_BUILD/modules/manual.so, else build/modules/manual.so) and run
 * against the fake host in fake_host.c. Covered: the instructions for each
 * method (amount by currency exponent, reference, bank details, expiry
 * date), the reference code's format and uniqueness over many draws,
 * unknown and disabled methods, confirm/retrieve/cancel/refund, and every
 * configuration refusal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_host.h"

#define ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

static void *dl;
static const payd_module *mod;
static const payd_gateway_ops *gw;
static void *st;
static payd_arena *arena;

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                     */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("manual", &dl);
    if (mod == NULL)
        return -1;
    gw = mod->gateway;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fake_module_unload(dl);
    return 0;
}

static void default_config(void)
{
    fake_config_set("payd.instance", "manual");
    fake_config_set("methods", "bank_transfer,cash_on_delivery");
    fake_config_set("bank_account_name", "Example Shop Ltd");
    fake_config_set("bank_iban", "GB82WEST12345698765432");
    fake_config_set("bank_bic", "WESTGB2L");
    fake_config_set("bank_name", "Westminster Bank");
    fake_config_set("instructions.cash_on_delivery", "Have the exact amount ready.");
}

static int start_instance(payd_error *e)
{
    return fake_module_start(mod, fake_host(), &st, e);
}

static int setup(void **state)
{
    payd_error e;

    (void)state;
    fake_host_reset();
    default_config();
    arena = fake_arena_new();
    return start_instance(&e) == PAYD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fake_module_stop(mod, &st);
    fake_arena_free(arena);
    arena = NULL;
    return 0;
}

/* Restart the instance with key, value, ..., NULL over the defaults (a NULL
 * value removes the key). Returns init's code; e gets its message. */
#define restart_with(e, ...) fake_module_restart_with(mod, fake_host(), &st, (e), __VA_ARGS__)

static payd_payment_req pay_req(const char *method, int64_t amount,
                                const char *currency, int exponent)
{
    payd_payment_req r;

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.payment_id = "pay_unit1";
    r.order_id = "ord_unit1";
    r.idempotency_key = "payd-pay_unit1-create-1";
    r.payment_method = method;
    r.amount = amount;
    r.currency = currency;
    r.currency_exponent = exponent;
    return r;
}

static int call(int (*fn)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res)),
                const payd_payment_req *req, payd_payment_res *res,
                payd_error *e)
{
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(e, 0, sizeof *e);
    return fn(st, req, res, arena, e);
}

/* create that must succeed; returns the result. */
static payd_payment_res create_ok(const char *method, int64_t amount,
                                  const char *currency, int exponent)
{
    payd_payment_req req = pay_req(method, amount, currency, exponent);
    payd_payment_res res;
    payd_error e;

    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(res.next_action, PAYD_NA_DISPLAY_INSTRUCTIONS);
    assert_non_null(res.next_action_text);
    assert_non_null(res.provider_ref);
    return res;
}

/* PREFIX-XXXX-XXXX-XXXX with symbols from the unambiguous alphabet. */
static void expect_reference(const char *ref, const char *prefix)
{
    size_t n = strlen(prefix), i;

    assert_non_null(ref);
    assert_int_equal(strncmp(ref, prefix, n), 0);
    assert_int_equal(strlen(ref), n + 15);
    for (i = n; ref[i]; i++) {
        if ((i - n) % 5 == 0)
            assert_int_equal(ref[i], '-');
        else
            assert_non_null(strchr(ALPHABET, ref[i]));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ------------------------------------------------------------------------ */
/* Instructions                                                             */
/* ------------------------------------------------------------------------ */

static void test_bank_transfer_instructions_hold_amount_reference_and_bank_details(void **state)
{
    payd_payment_res res = create_ok("bank_transfer", 2599, "USD", 2);
    const char *t = res.next_action_text;

    (void)state;
    expect_reference(res.provider_ref, "PAYD");
    assert_non_null(strstr(t, "Pay 25.99 USD by bank transfer."));
    assert_non_null(strstr(t, res.provider_ref));
    assert_non_null(strstr(t, "Account name: Example Shop Ltd"));
    /* Shown grouped by four, the way banks print it. */
    assert_non_null(strstr(t, "IBAN: GB82 WEST 1234 5698 7654 32"));
    assert_non_null(strstr(t, "BIC: WESTGB2L"));
    assert_non_null(strstr(t, "Bank: Westminster Bank"));
    /* No expiry configured: no date promised. */
    assert_null(strstr(t, "Unpaid by"));
    assert_int_equal(res.amount, 2599);
    assert_non_null(strstr(res.raw, "\"method\":\"bank_transfer\""));
}

static void test_cash_on_delivery_instructions_carry_the_configured_text_and_no_bank(void **state)
{
    payd_payment_res res = create_ok("cash_on_delivery", 1000, "EUR", 2);
    const char *t = res.next_action_text;

    (void)state;
    assert_non_null(strstr(t, "Pay 10.00 EUR in cash on delivery."));
    assert_non_null(strstr(t, "Have the exact amount ready."));
    assert_non_null(strstr(t, res.provider_ref));
    assert_null(strstr(t, "IBAN"));
}

static void test_cheque_instructions_name_the_payee(void **state)
{
    payd_error e;
    payd_payment_res res;

    (void)state;
    assert_int_equal(restart_with(&e, "methods", "cheque", "instructions.cheque",
                                  "Payable to Example Shop Ltd, 1 Main St", NULL),
                     PAYD_OK);
    res = create_ok("cheque", 5000, "GBP", 2);
    assert_non_null(strstr(res.next_action_text, "Pay 50.00 GBP by cheque."));
    assert_non_null(strstr(res.next_action_text, "Payable to Example Shop Ltd, 1 Main St"));
    assert_non_null(strstr(res.next_action_text, "write it on the back of the cheque"));
}

static void test_amounts_are_formatted_by_currency_exponent(void **state)
{
    static const struct {
        int64_t amount;
        const char *currency;
        int exponent;
        const char *want;
    } cases[] = {
        {1500, "JPY", 0, "Pay 1500 JPY "},
        {1500, "KWD", 3, "Pay 1.500 KWD "},
        {5, "USD", 2, "Pay 0.05 USD "},
        {100, "USD", 2, "Pay 1.00 USD "},
        {123456789012LL, "EUR", 2, "Pay 1234567890.12 EUR "},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_payment_res res = create_ok("bank_transfer", cases[i].amount,
                                         cases[i].currency, cases[i].exponent);
        if (strstr(res.next_action_text, cases[i].want) == NULL)
            fail_msg("case %zu: want '%s' in '%s'", i, cases[i].want,
                     res.next_action_text);
    }
}

static void test_expiry_date_is_named_when_auto_expire_days_is_set(void **state)
{
    payd_error e;
    payd_payment_res res;
    char want[64], alt[64];
    time_t before, after;
    struct tm tm;

    (void)state;
    assert_int_equal(restart_with(&e, "auto_expire_days", "7", NULL), PAYD_OK);
    fake_clock_shift(86400);
    before = time(NULL) + 86400 + 7 * 86400;
    res = create_ok("bank_transfer", 100, "USD", 2);
    after = time(NULL) + 86400 + 7 * 86400;
    gmtime_r(&before, &tm);
    strftime(want, sizeof want, "Unpaid by %Y-%m-%d (UTC)", &tm);
    gmtime_r(&after, &tm);
    strftime(alt, sizeof alt, "Unpaid by %Y-%m-%d (UTC)", &tm);
    assert_true(strstr(res.next_action_text, want) != NULL ||
                strstr(res.next_action_text, alt) != NULL);
}

static void test_confirm_names_the_expiry_delay_not_a_date_counted_from_now(void **state)
{
    payd_error e;
    payd_payment_res created, res;
    payd_payment_req req;

    (void)state;
    assert_int_equal(restart_with(&e, "auto_expire_days", "7", NULL), PAYD_OK);
    created = create_ok("bank_transfer", 100, "USD", 2);
    req = pay_req("bank_transfer", 100, "USD", 2);
    req.provider_ref = created.provider_ref;
    /* Days later: the janitor still counts from the creation, which the
     * module cannot know here, so no later date may be promised. */
    fake_clock_shift(3 * 86400);
    assert_int_equal(call(gw->confirm, &req, &res, &e), PAYD_OK);
    assert_null(strstr(res.next_action_text, "Unpaid by"));
    assert_non_null(strstr(res.next_action_text,
                           "Unpaid 7 days after the payment was started, it is cancelled."));
    assert_int_equal(call(gw->retrieve, &req, &res, &e), PAYD_OK);
    assert_null(strstr(res.next_action_text, "Unpaid by"));
}

static void test_results_fit_an_older_hosts_smaller_struct(void **state)
{
    payd_payment_req req = pay_req("bank_transfer", 100, "USD", 2);
    union {
        payd_payment_res res;
        unsigned char bytes[sizeof(payd_payment_res)];
    } u;
    size_t small = offsetof(payd_payment_res, next_action_text);
    size_t i;
    payd_error e;

    (void)state;
    memset(&u, 0xA5, sizeof u);
    u.res.struct_size = (uint32_t)small;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->create(st, &req, &u.res, arena, &e), PAYD_OK);
    assert_int_equal(u.res.struct_size, small);
    assert_int_equal(u.res.status, PAYD_PS_REQUIRES_ACTION);
    expect_reference(u.res.provider_ref, "PAYD");
    /* Nothing past what the host said it has was touched. */
    for (i = small; i < sizeof u.bytes; i++)
        assert_int_equal(u.bytes[i], 0xA5);
}

/* ------------------------------------------------------------------------ */
/* References                                                               */
/* ------------------------------------------------------------------------ */

static void test_references_are_well_formed_and_unique_over_many_draws(void **state)
{
    enum { DRAWS = 20000 };
    char **refs = calloc(DRAWS, sizeof *refs);
    int seen[32] = {0};
    size_t i, k;

    (void)state;
    assert_non_null(refs);
    for (i = 0; i < DRAWS; i++) {
        payd_payment_res res = create_ok("bank_transfer", 100, "USD", 2);
        expect_reference(res.provider_ref, "PAYD");
        refs[i] = strdup(res.provider_ref);
        for (k = 5; refs[i][k]; k++)
            if (refs[i][k] != '-')
                seen[strchr(ALPHABET, refs[i][k]) - ALPHABET]++;
        if (i % 1000 == 999) {
            /* Keep the arena small. */
            fake_arena_free(arena);
            arena = fake_arena_new();
        }
    }
    qsort(refs, DRAWS, sizeof *refs, cmp_str);
    for (i = 1; i < DRAWS; i++)
        if (strcmp(refs[i - 1], refs[i]) == 0)
            fail_msg("reference %s drawn twice", refs[i]);
    /* Every symbol of the alphabet turns up (240000 symbols drawn). */
    for (k = 0; k < 32; k++)
        assert_true(seen[k] > 0);
    for (i = 0; i < DRAWS; i++)
        free(refs[i]);
    free(refs);
}

static void test_reference_prefix_comes_from_config(void **state)
{
    payd_error e;
    payd_payment_res res;

    (void)state;
    assert_int_equal(restart_with(&e, "reference_prefix", "SHOP42", NULL), PAYD_OK);
    res = create_ok("bank_transfer", 100, "USD", 2);
    expect_reference(res.provider_ref, "SHOP42");
    assert_non_null(strstr(res.next_action_text, res.provider_ref));
}

/* ------------------------------------------------------------------------ */
/* Methods                                                                  */
/* ------------------------------------------------------------------------ */

static void test_unknown_disabled_and_missing_methods_are_invalid_naming_them(void **state)
{
    payd_payment_req req = pay_req("cheque", 100, "USD", 2);
    payd_payment_res res;
    payd_error e;

    (void)state;
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "'cheque' is not enabled"));
    assert_non_null(strstr(e.message, "bank_transfer, cash_on_delivery"));

    req.payment_method = "pm_card_visa";
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "'pm_card_visa' is unknown"));

    req.payment_method = NULL;
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "payment_method is required"));

    /* A card number pasted as the method is never repeated. */
    req.payment_method = "4242424242424242";
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "unknown payment method"));
    assert_null(strstr(e.message, "4242"));

    req = pay_req("bank_transfer", 0, "USD", 2);
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_E_INVALID);
}

static void test_confirm_and_retrieve_report_processing_with_the_same_reference(void **state)
{
    payd_payment_res created = create_ok("bank_transfer", 700, "USD", 2);
    payd_payment_req req = pay_req("bank_transfer", 700, "USD", 2);
    payd_payment_res res;
    payd_error e;

    (void)state;
    req.provider_ref = created.provider_ref;
    assert_int_equal(call(gw->confirm, &req, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_PROCESSING);
    assert_string_equal(res.provider_ref, created.provider_ref);
    assert_int_equal(res.next_action, PAYD_NA_DISPLAY_INSTRUCTIONS);
    assert_non_null(strstr(res.next_action_text, created.provider_ref));

    assert_int_equal(call(gw->retrieve, &req, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_PROCESSING);
    assert_string_equal(res.provider_ref, created.provider_ref);

    assert_int_equal(call(gw->cancel, &req, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_CANCELED);

    /* A reference this instance never issues is not ours. */
    req.provider_ref = "pi_3Abc";
    assert_int_equal(call(gw->confirm, &req, &res, &e), PAYD_E_NOTFOUND);
    assert_int_equal(call(gw->retrieve, &req, &res, &e), PAYD_E_NOTFOUND);
}

static void test_create_with_confirm_goes_straight_to_processing(void **state)
{
    payd_payment_req req = pay_req("cash_on_delivery", 1999, "USD", 2);
    payd_payment_res res;
    payd_error e;

    (void)state;
    req.confirm = 1;
    assert_int_equal(call(gw->create, &req, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_PROCESSING);
    assert_int_equal(res.next_action, PAYD_NA_DISPLAY_INSTRUCTIONS);
    expect_reference(res.provider_ref, "PAYD");
    assert_non_null(strstr(res.next_action_text, "Pay 19.99 USD in cash on delivery."));
}

static void test_refund_is_recorded_pending_with_its_own_reference(void **state)
{
    payd_refund_req req;
    payd_refund_res res;
    payd_error e;

    (void)state;
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.refund_id = "re_unit1";
    req.payment_id = "pay_unit1";
    req.provider_ref = "PAYD-AAAA-BBBB-CCCC";
    req.amount = 300;
    req.currency = "USD";
    req.currency_exponent = 2;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->refund(st, &req, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_RS_PENDING);
    expect_reference(res.refund_ref, "PAYD");
}

static void test_public_info_lists_the_enabled_methods_and_caps_match(void **state)
{
    payd_error e;

    (void)state;
    assert_string_equal(gw->public_info(st),
                        "{\"methods\":[\"bank_transfer\",\"cash_on_delivery\"]}");
    assert_int_equal(restart_with(&e, "methods", "cash_on_delivery", NULL), PAYD_OK);
    assert_string_equal(gw->public_info(st), "{\"methods\":[\"cash_on_delivery\"]}");
    assert_string_equal(mod->name, "manual");
    assert_true(mod->caps & PAYD_CAP_REFUND);
    assert_true(mod->caps & PAYD_CAP_CONFIRM);
    assert_false(mod->caps & PAYD_CAP_CAPTURE_LATER);
    assert_false(mod->caps & PAYD_CAP_WEBHOOKS);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

static void test_bad_configuration_is_refused_naming_the_key(void **state)
{
    static const struct {
        const char *key, *value, *want;
    } cases[] = {
        {"methods", NULL, "methods is required"},
        {"methods", "bank_transfer,paypal", "unknown method 'paypal'"},
        {"methods", " , ", "methods names no method"},
        {"bank_iban", NULL, "bank_transfer needs bank_account_name and bank_iban"},
        {"bank_iban", "GB82WEST12345698765433", "bank_iban is not a valid IBAN"},
        {"bank_iban", "GB82-WEST", "bank_iban is not a valid IBAN"},
        {"bank_account_name", NULL, "bank_transfer needs bank_account_name"},
        {"reference_prefix", "pay", "reference_prefix must be 1 to 8"},
        {"reference_prefix", "TOOLONGPREFIX", "reference_prefix must be 1 to 8"},
        {"auto_expire_days", "366", "invalid value for auto_expire_days"},
        {"auto_expire_days", "-1", "invalid value for auto_expire_days"},
        {"methods", "cheque", "cheque needs instructions.cheque"},
        {"instructions.cash_on_delivery", "", "instructions.cash_on_delivery must be 1 to"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_error e;
        int rc;

        fake_host_reset();
        default_config();
        rc = restart_with(&e, cases[i].key, cases[i].value, NULL);
        if (rc != PAYD_E_INVALID || strstr(e.message, cases[i].want) == NULL)
            fail_msg("case %zu (%s = %s): rc %d, message '%s', want '%s'", i,
                     cases[i].key, cases[i].value ? cases[i].value : "(unset)",
                     rc, e.message, cases[i].want);
        assert_null(st);
    }
    fake_host_reset();
    default_config();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bank_transfer_instructions_hold_amount_reference_and_bank_details, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cash_on_delivery_instructions_carry_the_configured_text_and_no_bank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cheque_instructions_name_the_payee, setup, teardown),
        cmocka_unit_test_setup_teardown(test_amounts_are_formatted_by_currency_exponent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_date_is_named_when_auto_expire_days_is_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_names_the_expiry_delay_not_a_date_counted_from_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_fit_an_older_hosts_smaller_struct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_references_are_well_formed_and_unique_over_many_draws, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reference_prefix_comes_from_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_disabled_and_missing_methods_are_invalid_naming_them, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_and_retrieve_report_processing_with_the_same_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_with_confirm_goes_straight_to_processing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refund_is_recorded_pending_with_its_own_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_info_lists_the_enabled_methods_and_caps_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_configuration_is_refused_naming_the_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
