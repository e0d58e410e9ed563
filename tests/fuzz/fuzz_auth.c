/*
 * tests/fuzz/fuzz_auth.c - the Authorization header (server/auth.c): the
 * Bearer prefix, the API key shape, and end-user JWTs through libjwt with
 * the algorithm pinned to HS256.
 *
 * There is no database: the store has no connections, so a well-formed API
 * key ends in AUTH_UNAVAILABLE, as when PostgreSQL is down.
 *
 * Input: one mode byte, then the rest ("0".."3" in the seeds):
 *   mode % 4 == 0  the rest is the whole Authorization header
 *              1   "<JOSE header JSON>\n<claims JSON>": the harness makes a
 *                  JWT of them signed HS256 with the configured secret
 *              2   "<claims JSON>" with the header {"alg":"HS256","typ":"JWT"}
 *              3   the rest is the token after "Bearer "
 * Modes 1 and 2 get past the signature, so the claim checks (exp, sub, alg)
 * see every claims object the fuzzer makes.
 *
 * Besides crashes, it aborts if a header the harness did not sign is
 * accepted (a forged or unsigned token, "alg":"none"), or if an accepted
 * principal is not a user with a sub of 1..100 bytes.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "auth.h"
#include "log.h"
#include "store.h"

#define JWT_SECRET "fuzz-jwt-secret-0123456789abcdef"

static config cfg;
static app the_app;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    store *db = NULL;

    (void)argc, (void)argv;
    log_set_level(LOG_ERROR);
    cfg.jwt_secret = strdup(JWT_SECRET);
    cfg.jwt_leeway_s = 30;
    if (store_open(&db, "postgresql://fuzz.invalid/none", 0, 0, 0) != STORE_OK)
        abort();
    the_app.cfg = &cfg;
    the_app.db = db;
    return 0;
}

/* base64url without padding of [p, p+n) appended to out at *o. */
static void b64url(const unsigned char *p, size_t n, char *out, size_t *o)
{
    char *tmp = malloc(4 * ((n + 2) / 3) + 1);
    int len;

    if (tmp == NULL)
        abort();
    len = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    for (int i = 0; i < len; i++) {
        char c = tmp[i];

        if (c == '=')
            break;
        out[(*o)++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    free(tmp);
}

/* "Bearer " + base64url(hdr) "." base64url(claims) "." base64url(HS256). */
static char *make_jwt(const char *hdr, size_t hlen, const char *claims, size_t clen)
{
    size_t cap = 16 + 2 * (hlen + clen) + 64, o = 7;
    char *out = malloc(cap);
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;

    if (out == NULL)
        abort();
    memcpy(out, "Bearer ", 7);
    b64url((const unsigned char *)hdr, hlen, out, &o);
    out[o++] = '.';
    b64url((const unsigned char *)claims, clen, out, &o);
    HMAC(EVP_sha256(), JWT_SECRET, (int)strlen(JWT_SECRET),
         (const unsigned char *)out + 7, o - 7, mac, &maclen);
    out[o++] = '.';
    b64url(mac, sizeof mac, out, &o);
    out[o] = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char std_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *rest = (const char *)data + 1;
    size_t rest_len;
    char *header;
    principal who;
    const char *why = NULL;
    int mode, rc;

    if (size < 1 || memchr(data, '\0', size) != NULL)
        return 0;
    mode = data[0] % 4;
    rest_len = size - 1;
    if (mode == 1) {
        const char *nl = memchr(rest, '\n', rest_len);
        size_t hlen = nl != NULL ? (size_t)(nl - rest) : rest_len;

        header = make_jwt(rest, hlen, nl != NULL ? nl + 1 : "",
                          nl != NULL ? rest_len - hlen - 1 : 0);
    } else if (mode == 2) {
        header = make_jwt(std_hdr, sizeof std_hdr - 1, rest, rest_len);
    } else {
        size_t pre = mode == 3 ? 7 : 0;

        header = malloc(pre + rest_len + 1);
        if (header == NULL)
            abort();
        memcpy(header, "Bearer ", pre);
        memcpy(header + pre, rest, rest_len);
        header[pre + rest_len] = '\0';
    }

    rc = auth_authenticate(&the_app, header, &who, &why);
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "mode %d rc %d why %s actor %s\n", mode, rc,
                why ? why : "-", who.actor);
    if (rc == AUTH_OK && (mode == 0 || mode == 3)) {
        fprintf(stderr, "INVARIANT: a credential the harness did not sign "
                        "was accepted\n");
        abort();
    }
    if (rc == AUTH_OK && (who.kind != PRINCIPAL_USER || who.role != ROLE_USER ||
                          who.id[0] == '\0' || strlen(who.id) > 100 ||
                          strncmp(who.actor, "user:", 5) != 0)) {
        fprintf(stderr, "INVARIANT: accepted principal is malformed\n");
        abort();
    }
    if (rc == AUTH_INVALID && (why == NULL || strlen(why) == 0))
        abort();
    free(header);
    return 0;
}
