/*
 * modules/paypal/paypal_token_seal.c - the access token, sealed for the
 * shared cache.
 *
 * The host cache may be Redis, which payd does not treat as a secret
 * store: a bearer token read from it would move money for up to nine
 * hours. So the token is cached only sealed with AES-256-GCM under a key
 * derived from the client secret:
 *
 *   key    = HMAC-SHA256(client_secret, "payd paypal token cache v1|" +
 *                        client_id + "|" + api_base)
 *   stored = base64(nonce[12] || ciphertext || tag[16])
 *   aad    = "payd paypal token v1"
 *
 * Every payd process holding the same credentials derives the same key and
 * shares the token; a reader of Redis alone learns nothing, and a value
 * that was changed or sealed for another account does not open (a cache
 * miss, then a fresh token). The key lives in the instance and is wiped by
 * fini like the secret it comes from.
 *
 * The cache entry is named by a key id derived from the key, so processes
 * on other credentials (during a secret rotation) or on an older format
 * never read or overwrite each other's entry.
 *
 * Threads: the functions are pure over their arguments; the key is
 * written once at init.
 */
#include "paypal.h"

#include <string.h>

#include <openssl/evp.h>

#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEAL_AAD "payd paypal token v1"

/* See paypal.h. The key id is the first 8 bytes of HMAC(key, "key id"):
 * public, and different for every key. */
int paypal_seal_key(const payd_host *h, const paypal_instance *inst,
                    uint8_t key[PAYPAL_SEAL_KEY_LEN], char cache_key[48])
{
    static const char kid_label[] = "key id";
    char label[PAYPAL_URL_MAX + 256];
    uint8_t kid[32];
    int n = snprintf(label, sizeof label, "payd paypal token cache v1|%s|%s",
                     inst->client_id, inst->api_base);

    if (n < 0 || (size_t)n >= sizeof label)
        return PAYD_E_INVALID;
    h->hmac_sha256(inst->client_secret, inst->client_secret_len, label,
                   (size_t)n, key);
    h->hmac_sha256(key, PAYPAL_SEAL_KEY_LEN, kid_label, sizeof kid_label - 1,
                   kid);
    snprintf(cache_key, 48,
             "oauth_token.v1.%02x%02x%02x%02x%02x%02x%02x%02x", kid[0],
             kid[1], kid[2], kid[3], kid[4], kid[5], kid[6], kid[7]);
    return PAYD_OK;
}

/* See paypal.h. */
char *paypal_token_seal(const payd_host *h, payd_arena *a,
                        const uint8_t key[PAYPAL_SEAL_KEY_LEN],
                        const char *token)
{
    size_t len = strlen(token);
    uint8_t *buf = h->alloc(a, SEAL_NONCE + len + SEAL_TAG);
    EVP_CIPHER_CTX *ctx;
    int out = 0, fin = 0, ok;

    if (buf == NULL || len == 0 || len > PAYPAL_TOKEN_MAX ||
        h->random_bytes(buf, SEAL_NONCE) != PAYD_OK)
        return NULL;
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL &&
         EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
         EVP_EncryptUpdate(ctx, NULL, &out, (const uint8_t *)SEAL_AAD,
                           (int)sizeof SEAL_AAD - 1) == 1 &&
         EVP_EncryptUpdate(ctx, buf + SEAL_NONCE, &out,
                           (const uint8_t *)token, (int)len) == 1 &&
         EVP_EncryptFinal_ex(ctx, buf + SEAL_NONCE + out, &fin) == 1 &&
         (size_t)(out + fin) == len &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG,
                             buf + SEAL_NONCE + len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? h->base64_encode(a, buf, SEAL_NONCE + len + SEAL_TAG) : NULL;
}

/* See paypal.h. */
char *paypal_token_open(const payd_host *h, payd_arena *a,
                        const uint8_t key[PAYPAL_SEAL_KEY_LEN],
                        const char *sealed)
{
    uint8_t *buf = NULL;
    long n;
    EVP_CIPHER_CTX *ctx;
    char *token;
    size_t len;
    int out = 0, fin = 0, ok;

    /* Whoever writes the cache chooses this text: bound it before the
     * host decodes (and allocates for) it. */
    if (strlen(sealed) > 4 * ((SEAL_NONCE + SEAL_TAG + PAYPAL_TOKEN_MAX + 2) / 3))
        return NULL;
    n = h->base64_decode(a, sealed, &buf);
    if (n < SEAL_NONCE + SEAL_TAG + 1 ||
        (size_t)n > SEAL_NONCE + SEAL_TAG + PAYPAL_TOKEN_MAX)
        return NULL;
    len = (size_t)n - SEAL_NONCE - SEAL_TAG;
    token = h->alloc(a, len + 1);
    if (token == NULL)
        return NULL;
    ctx = EVP_CIPHER_CTX_new();
    ok = ctx != NULL &&
         EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
         EVP_DecryptUpdate(ctx, NULL, &out, (const uint8_t *)SEAL_AAD,
                           (int)sizeof SEAL_AAD - 1) == 1 &&
         EVP_DecryptUpdate(ctx, (uint8_t *)token, &out, buf + SEAL_NONCE,
                           (int)len) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG,
                             buf + SEAL_NONCE + len) == 1 &&
         EVP_DecryptFinal_ex(ctx, (uint8_t *)token + out, &fin) == 1 &&
         (size_t)(out + fin) == len;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        h->cleanse(token, len);
        return NULL;
    }
    token[len] = '\0';
    return token;
}
