/*
 * tests/fuzz/fuzz_stripe_response.c - what the Stripe gateway does with the
 * bytes Stripe (or whatever answers at api_base: a proxy, a captive portal,
 * an attacker on a broken TLS setup) sends back: stripe_api.c's parse and
 * object check, stripe_errors.c's mapping of error bodies, the
 * PaymentIntent, Refund and PaymentMethod readers and stripe_raw.c's
 * redaction.
 *
 * tests/fuzz/host.c is the host; its `http` answers every request of the
 * operation with the fuzzed status, Request-Id and body.
 *
 * Input: op byte, status byte, then "<Request-Id>\n<body>". An operation
 * that makes several calls (save_method: customer, attach) gets the parts
 * of <body> split at "\n#\n" in turn, the last one repeating.
 *   op % 11: create (confirming), retrieve, confirm, capture, cancel,
 *            refund, refund_retrieve, save_method (new customer),
 *            save_method (existing customer), delete_method, list_methods
 *   status:  one of the statuses in `statuses` below (0 = transport error)
 */
#include <payd/module.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "fuzz_host.h"

static const long statuses[] = {200, 200, 200, 201, 204, 299, 300, 302, 400,
                                401, 402, 403, 404, 409, 422, 429, 500, 502,
                                503, 100, 199, 600, -1, 0};

static const payd_module *mod;
static void *state;

/* The answer of the current input. */
static long answer_status;
static const char *answer_id;
static size_t answer_id_len;
static const char *answer_body;
static size_t answer_len;
static int answer_call;

#define SEP "\n#\n"

/* The part of the body for call `n`. */
static void answer_part(int n, const char **p, size_t *len)
{
    const char *s = answer_body, *end = answer_body + answer_len;

    for (;;) {
        const char *sep = memmem(s, (size_t)(end - s), SEP, 3);

        if (sep == NULL || n == 0) {
            *p = s;
            *len = sep != NULL ? (size_t)(sep - s) : (size_t)(end - s);
            return;
        }
        s = sep + 3;
        n--;
    }
}

static int answer(const payd_host *h, const payd_http_request *req,
                  payd_http_response *res, payd_arena *a, payd_error *e)
{
    payd_header *hd;
    const char *body;
    size_t body_len;

    (void)h;
    if (req == NULL || req->url == NULL || req->method == NULL || a == NULL)
        return PAYD_E_INVALID;
    if (answer_status == 0) {
        snprintf(e->message, sizeof e->message, "connection refused (fuzz)");
        e->code = PAYD_E_TRANSIENT;
        return PAYD_E_TRANSIENT;
    }
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    res->status = answer_status;
    answer_part(answer_call++, &body, &body_len);
    res->body = fuzz_host_strndup(a, body, body_len);
    res->body_len = body_len;
    hd = fuzz_host_alloc(a, sizeof *hd);
    if (res->body == NULL || hd == NULL)
        return PAYD_E_NOMEM;
    hd->name = "Request-Id";
    hd->value = fuzz_host_strndup(a, answer_id, answer_id_len);
    res->headers = hd;
    res->header_count = answer_id_len > 0 ? 1 : 0;
    return PAYD_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fake_host_reset();
    fake_config_set("payd.instance", "stripe_fuzz");
    fake_config_set("secret_key", "sk_test_fuzz_0123456789");
    fake_config_set("webhook_secret", "whsec_fuzz");
    fake_config_set("api_base", "http://127.0.0.1:9");
    fake_config_set("statement_descriptor_suffix", "FUZZ");
    mod = payd_module_v1();
    state = fuzz_gateway_start(mod, "fuzz_stripe_response");
    fuzz_host_set_http(answer);
    return 0;
}

static void payment(int op, payd_arena *a, payd_error *e)
{
    const payd_gateway_ops *g = mod->gateway;
    payd_payment_req req = {
        .struct_size = sizeof req,
        .payment_id = "pay_fuzz1",
        .order_id = "ord_fuzz1",
        .order_number = "1001",
        .idempotency_key = "payd-pay_fuzz1-op-1",
        .amount = 2599,
        .currency = "USD",
        .currency_exponent = 2,
        .provider_ref = op == 0 ? NULL : "pi_fuzz1",
        .payment_method = "pm_card_visa",
        .capture_method = PAYD_CAPTURE_MANUAL,
        .confirm = 1,
        .return_url = "https://shop.example/return?x=1",
        .description = "fuzz order",
        .customer_email = "buyer@example.com",
        .amount_to_capture = op == 3 ? 1000 : 0,
        .cancel_reason = op == 4 ? "requested_by_customer" : NULL,
    };
    payd_payment_res res = {.struct_size = sizeof res};
    int (*fn)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res)) =
        op == 0 ? g->create : op == 1 ? g->retrieve : op == 2 ? g->confirm
        : op == 3 ? g->capture : g->cancel;

    if (fn(state, &req, &res, a, e) == PAYD_OK || res.provider_ref != NULL) {
        fuzz_touch(res.provider_ref);
        fuzz_touch(res.client_secret);
        fuzz_touch(res.next_action_url);
        fuzz_touch(res.next_action_text);
        fuzz_touch(res.failure_code);
        fuzz_touch(res.failure_message);
        fuzz_touch(res.raw);
        fuzz_touch(res.provider_request_id);
    }
}

static void refund(int op, payd_arena *a, payd_error *e)
{
    payd_refund_req req = {
        .struct_size = sizeof req,
        .refund_id = "re_payd_fuzz1",
        .payment_id = "pay_fuzz1",
        .idempotency_key = "payd-re_payd_fuzz1-refund-1",
        .provider_ref = "pi_fuzz1",
        .refund_ref = op == 6 ? "re_fuzz1" : NULL,
        .amount = 500,
        .currency = "USD",
        .currency_exponent = 2,
        .reason = "requested_by_customer",
    };
    payd_refund_res res = {.struct_size = sizeof res};
    int rc = op == 5 ? mod->gateway->refund(state, &req, &res, a, e)
                     : mod->gateway->refund_retrieve(state, &req, &res, a, e);

    if (rc == PAYD_OK || res.refund_ref != NULL) {
        fuzz_touch(res.refund_ref);
        fuzz_touch(res.failure_code);
        fuzz_touch(res.failure_message);
        fuzz_touch(res.raw);
        fuzz_touch(res.provider_request_id);
    }
}

static void method(int op, payd_arena *a, payd_error *e)
{
    payd_method_req req = {
        .struct_size = sizeof req,
        .customer_ref = op == 7 ? NULL : "cus_fuzz1",
        .customer_email = "buyer@example.com",
        .method_ref = "pm_fuzz1",
        .idempotency_key = "payd-pm-fuzz-1",
    };

    if (op == 10) {
        payd_method_list list = {.struct_size = sizeof list};

        if (mod->gateway->list_methods(state, &req, &list, a, e) == PAYD_OK)
            for (size_t i = 0; i < list.count; i++) {
                fuzz_touch(list.items[i].method_ref);
                fuzz_touch(list.items[i].customer_ref);
                fuzz_touch(list.items[i].brand);
                fuzz_touch(list.items[i].last4);
            }
        return;
    }
    payd_method m = {.struct_size = sizeof m};
    int rc = op == 9 ? mod->gateway->delete_method(state, &req, &m, a, e)
                     : mod->gateway->save_method(state, &req, &m, a, e);

    if (rc == PAYD_OK) {
        fuzz_touch(m.method_ref);
        fuzz_touch(m.customer_ref);
        fuzz_touch(m.brand);
        fuzz_touch(m.last4);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    payd_error e;
    payd_arena *a;
    const char *rest, *nl;
    size_t rest_len;
    int op;

    if (size < 2)
        return 0;
    op = data[0] % 11;
    answer_status = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
    rest = (const char *)data + 2;
    rest_len = size - 2;
    nl = memchr(rest, '\n', rest_len);
    answer_id = rest;
    answer_id_len = nl != NULL ? (size_t)(nl - rest) : 0;
    answer_body = nl != NULL ? nl + 1 : rest;
    answer_len = nl != NULL ? rest_len - answer_id_len - 1 : rest_len;

    answer_call = 0;
    a = fuzz_arena_new();
    memset(&e, 0, sizeof e);
    if (op <= 4)
        payment(op, a, &e);
    else if (op <= 6)
        refund(op, a, &e);
    else
        method(op, a, &e);
    if (memchr(e.message, '\0', sizeof e.message) == NULL ||
        memchr(e.failure_code, '\0', sizeof e.failure_code) == NULL ||
        memchr(e.provider_request_id, '\0', sizeof e.provider_request_id) == NULL) {
        fprintf(stderr, "INVARIANT: payd_error left unterminated\n");
        abort();
    }
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "op %d status %ld: rc %d %s [%s]\n", op, answer_status,
                e.code, e.message, e.failure_code);
    fuzz_arena_free(a);
    return 0;
}
