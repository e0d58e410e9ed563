/*
 * tests/fuzz/fuzz_stripe_webhook.c - the Stripe gateway's `webhook`
 * operation: the Stripe-Signature parser (stripe_signature.c), the
 * verifier with two secrets (a rotation), then jansson and the event
 * mapping (stripe_webhook.c) behind it.
 *
 * The module's sources are linked into this binary and reached through its
 * descriptor (payd_module_v1()->gateway->webhook), as payd calls it, with
 * tests/fuzz/host.c as the host (its clock is the fixtures' "now", so the
 * signed cases of /work/shared/fixtures/stripe-webhooks.json verify) and
 * webhook_secret = the fixtures' secret plus a second one.
 *
 * Input: one mode byte, then the rest ("0".."7" in the seeds):
 *   mode % 8 == 0  raw: "<Stripe-Signature value>\n<body>"; the header is
 *                  also given to stripe_signature_parse directly
 *              1   signed: the rest is the body, signed correctly (t = now)
 *              2   signed at the edge of the tolerance (t = now - 300)
 *              3   signed, but stale (t = now - 301): must be refused
 *              4   signed, with a v0 item and a wrong v1 before the right one
 *              5   raw, with the header sent twice: must be refused
 *              6   signed with the second secret, header name in lower case
 *              7   no signature header, the rest is the body: must be refused
 * The signed modes get past the signature, so the JSON mapping sees every
 * body the fuzzer makes. Like server/webhooks.c, a body with a NUL byte is
 * not passed on (the host refuses those).
 *
 * Besides crashes, the target aborts when a correctly signed body is
 * refused as badly signed, or an unsigned, stale or duplicated one is
 * accepted.
 */
#include <payd/module.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "fuzz_host.h"
#include "stripe.h"

#define SECRET "whsec_payd_fixture_5f2b8c1e9a"
#define SECRET2 "whsec_rotated_second_secret"
#define TOLERANCE 300

static const payd_module *mod;
static void *state;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fake_host_reset();
    fake_config_set("payd.instance", "stripe_fuzz");
    fake_config_set("secret_key", "sk_test_fuzz_0123456789");
    fake_config_set("webhook_secret", SECRET "," SECRET2);
    fake_config_set("api_base", "http://127.0.0.1:9");
    mod = payd_module_v1();
    state = fuzz_gateway_start(mod, "fuzz_stripe_webhook");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char header[1200], other[1200];
    payd_header hdrs[3];
    size_t nh = 0;
    const char *rest;
    size_t rest_len;
    char *body;
    size_t body_len;
    int mode, rc;

    if (size < 1)
        return 0;
    mode = data[0] % 8;
    rest = (const char *)data + 1;
    rest_len = size - 1;

    if (mode == 0 || mode == 5)
        fuzz_take_line(&rest, &rest_len, header, sizeof header);
    if (mode == 0) {
        stripe_sig sig;
        payd_error pe;

        memset(&pe, 0, sizeof pe);
        if (stripe_signature_parse(header, &sig, &pe) == PAYD_OK &&
            (sig.ts < header || sig.ts + sig.ts_len > header + strlen(header) ||
             sig.ts_len == 0 || sig.ts_len > 12 || sig.v1_count == 0 ||
             sig.v1_count > STRIPE_SIG_MAX_V1)) {
            fprintf(stderr, "INVARIANT: stripe_signature_parse accepted a "
                            "header it did not parse fully\n");
            abort();
        }
    }
    body = fuzz_body_copy(rest, rest_len);
    if (body == NULL)
        return 0;
    body_len = rest_len;

    switch (mode) {
    case 1:
        fuzz_sign_t_v1(SECRET, body, body_len, fuzz_host_now(),
                       header, sizeof header);
        break;
    case 6:
        fuzz_sign_t_v1(SECRET2, body, body_len, fuzz_host_now(),
                       header, sizeof header);
        break;
    case 2:
        fuzz_sign_t_v1(SECRET, body, body_len, fuzz_host_now() - TOLERANCE,
                       header, sizeof header);
        break;
    case 3:
        fuzz_sign_t_v1(SECRET, body, body_len, fuzz_host_now() - TOLERANCE - 1,
                       header, sizeof header);
        break;
    case 4:
        fuzz_sign_t_v1(SECRET, body, body_len, fuzz_host_now(),
                       other, sizeof other);
        snprintf(header, sizeof header,
                 "t=%lld,v0=deadbeef,v1=%064d,v1=%s", (long long)fuzz_host_now(),
                 0, strstr(other, "v1=") + 3);
        break;
    default:
        break;
    }
    hdrs[nh++] = (payd_header){"Content-Type", "application/json"};
    if (mode == 6) {
        hdrs[nh++] = (payd_header){"stripe-signature", header};
        hdrs[nh++] = (payd_header){"Mock-Signature", "t=1,v1=00"};
    } else if (mode == 5) {
        hdrs[nh++] = (payd_header){"Stripe-Signature", header};
        hdrs[nh++] = (payd_header){"Stripe-Signature", header};
    } else if (mode != 7) {
        hdrs[nh++] = (payd_header){"Stripe-Signature", header};
    }

    payd_webhook_req req = {.struct_size = sizeof req,
                            .headers = hdrs,
                            .header_count = nh,
                            .body = body,
                            .body_len = body_len};
    payd_event ev = {.struct_size = sizeof ev};
    payd_error e;
    payd_arena *a = fuzz_arena_new();

    memset(&e, 0, sizeof e);
    rc = mod->gateway->webhook(state, &req, &ev, a, &e);
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "mode %d: rc %d type %d id %s: %s\n", mode, rc, ev.type,
                rc == PAYD_OK ? ev.provider_event_id : "-", e.message);
    if (rc == PAYD_OK) {
        fuzz_touch_event(&ev);
    }
    if (mode == 1 || mode == 2 || mode == 4 || mode == 6)
        fuzz_invariant(rc != PAYD_E_SIGNATURE, "a correctly signed body was refused",
                  mode, rc, &e);
    if (mode == 3 || mode == 5 || mode == 7)
        fuzz_invariant(rc != PAYD_OK, "an unsigned, stale or doubly signed body was accepted",
                  mode, rc, &e);
    fuzz_arena_free(a);
    free(body);
    return 0;
}
