/*
 * auth.c - authentication of API keys and end-user JWTs.
 *
 * API keys look like "payd_<id>_<secret>": a 12-hex-char public id and a
 * 64-hex-char secret. Only sha256(secret) is stored; the id finds the row and
 * the hashes are compared in constant time. A validated key is cached in
 * process memory for KEY_CACHE_MS so the hot path costs no database round
 * trip; a revoked key therefore stops working within that time.
 *
 * End-user tokens are JWTs signed HS256 with [auth] jwt_secret (libjwt). The
 * algorithm is pinned, `exp` is required, and `sub` becomes the user id.
 * Thread-safe: the cache is guarded by one mutex held for a lookup only.
 */
#include "auth.h"

#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "audit.h"
#include "host.h"
#include "log.h"

#define KEY_ID_LEN 12
#define KEY_SECRET_LEN 64
#define KEY_CACHE_SLOTS 256
#define KEY_CACHE_MS 30000

typedef struct key_cache_entry {
    char id[KEY_ID_LEN + 1];
    uint8_t hash[32];
    int role;
    int64_t expires_ms;
} key_cache_entry;

static key_cache_entry key_cache[KEY_CACHE_SLOTS];
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

STORE_STMT(stmt_key_lookup,
           "SELECT encode(hash, 'hex') AS hash, role FROM api_keys WHERE id = $1 AND revoked_at IS NULL");
STORE_STMT(stmt_key_insert,
           "INSERT INTO api_keys (id, hash, role, description) VALUES ($1, decode($2, 'hex'), $3, $4)");

const char *auth_role_name(int role)
{
    switch (role) {
    case ROLE_ADMIN: return "admin";
    case ROLE_MERCHANT: return "merchant";
    case ROLE_USER: return "user";
    default: return "none";
    }
}

static int role_parse(const char *s)
{
    if (!s) return ROLE_NONE;
    if (strcmp(s, "admin") == 0) return ROLE_ADMIN;
    if (strcmp(s, "merchant") == 0) return ROLE_MERCHANT;
    return ROLE_NONE;
}

static size_t key_slot(const char *id)
{
    size_t h = 0;
    for (const char *p = id; *p; p++) h = h * 31 + (unsigned char)*p;
    return h % KEY_CACHE_SLOTS;
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static int auth_api_key(app *a, const char *token, principal *out, const char **why)
{
    /* payd_<12 hex>_<64 hex> */
    if (strlen(token) != 5 + KEY_ID_LEN + 1 + KEY_SECRET_LEN || token[5 + KEY_ID_LEN] != '_' ||
        !is_hex(token + 5, KEY_ID_LEN) || !is_hex(token + 6 + KEY_ID_LEN, KEY_SECRET_LEN)) {
        *why = "malformed API key";
        return AUTH_INVALID;
    }
    char id[KEY_ID_LEN + 1];
    memcpy(id, token + 5, KEY_ID_LEN);
    id[KEY_ID_LEN] = '\0';
    uint8_t presented[32];
    host_sha256(token + 6 + KEY_ID_LEN, KEY_SECRET_LEN, presented);

    int role = ROLE_NONE;
    uint8_t stored[32];
    int64_t now = host_now_ms();
    size_t slot = key_slot(id);
    pthread_mutex_lock(&key_cache_lock);
    key_cache_entry *e = &key_cache[slot];
    int cached = strcmp(e->id, id) == 0 && e->expires_ms > now;
    if (cached) {
        memcpy(stored, e->hash, 32);
        role = e->role;
    }
    pthread_mutex_unlock(&key_cache_lock);

    if (!cached) {
        store_conn *c = store_acquire(a->db);
        if (!c) return AUTH_UNAVAILABLE;
        const char *params[] = {id};
        PGresult *r = NULL;
        int rc = store_query(c, &stmt_key_lookup, 1, params, &r);
        store_release(c);
        if (rc != STORE_OK) return AUTH_UNAVAILABLE;
        int found = PQntuples(r) == 1 && host_unhex(store_val(r, 0, "hash"), stored, 32) == 0;
        role = found ? role_parse(store_val(r, 0, "role")) : ROLE_NONE;
        PQclear(r);
        if (!found) {
            *why = "unknown or revoked API key";
            return AUTH_INVALID;
        }
    }
    if (!host_equal_ct(stored, presented, 32)) {
        *why = "unknown or revoked API key";
        return AUTH_INVALID;
    }
    if (!cached) {
        pthread_mutex_lock(&key_cache_lock);
        e = &key_cache[slot];
        memcpy(e->id, id, sizeof e->id);
        memcpy(e->hash, stored, 32);
        e->role = role;
        e->expires_ms = now + KEY_CACHE_MS;
        pthread_mutex_unlock(&key_cache_lock);
    }
    out->kind = PRINCIPAL_KEY;
    out->role = role;
    snprintf(out->id, sizeof out->id, "%s", id);
    snprintf(out->actor, sizeof out->actor, "key:%s", id);
    return AUTH_OK;
}

/* `aud` may be a string or an array of strings (RFC 7519). */
static int jwt_audience_ok(jwt_t *jwt, const char *want)
{
    const char *aud = jwt_get_grant(jwt, "aud");
    if (aud) return strcmp(aud, want) == 0;
    char *json = jwt_get_grants_json(jwt, "aud");
    if (!json) return 0;
    json_t *list = json_loads(json, 0, NULL);
    free(json);
    int ok = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) ok |= json_is_string(v) && strcmp(json_string_value(v), want) == 0;
    json_decref(list);
    return ok;
}

static int auth_jwt(app *a, const char *token, principal *out, const char **why)
{
    if (!a->cfg->jwt_secret) {
        *why = "end-user tokens are not enabled ([auth] jwt_secret)";
        return AUTH_INVALID;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)a->cfg->jwt_secret,
                   (int)strlen(a->cfg->jwt_secret)) != 0 || !jwt) {
        *why = "invalid token signature or format";
        return AUTH_INVALID;
    }
    int rc = AUTH_INVALID;
    const char *sub = jwt_get_grant(jwt, "sub");
    long exp = jwt_get_grant_int(jwt, "exp");
    int64_t now = host_now_ms() / 1000;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) *why = "token must be signed with HS256";
    else if (exp <= 0) *why = "token has no exp claim";
    else if (exp + a->cfg->jwt_leeway_s < now) *why = "token has expired";
    else if (!sub || !*sub || strlen(sub) > 100) *why = "token has no valid sub claim";
    else if (jwt_get_grant_int(jwt, "nbf") > now + a->cfg->jwt_leeway_s) *why = "token is not valid yet";
    else if (a->cfg->jwt_issuer && (!jwt_get_grant(jwt, "iss") || strcmp(jwt_get_grant(jwt, "iss"), a->cfg->jwt_issuer)))
        *why = "token has the wrong issuer";
    else if (a->cfg->jwt_audience && !jwt_audience_ok(jwt, a->cfg->jwt_audience))
        *why = "token is not meant for payd (aud)";
    else {
        out->kind = PRINCIPAL_USER;
        out->role = ROLE_USER;
        snprintf(out->id, sizeof out->id, "%s", sub);
        snprintf(out->actor, sizeof out->actor, "user:%s", sub);
        rc = AUTH_OK;
    }
    jwt_free(jwt);
    return rc;
}

int auth_authenticate(app *a, const char *authorization, principal *out, const char **why)
{
    memset(out, 0, sizeof *out);
    *why = NULL;
    if (!authorization || !*authorization) return AUTH_MISSING;
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        *why = "use Authorization: Bearer <credential>";
        return AUTH_INVALID;
    }
    const char *token = authorization + 7;
    while (*token == ' ') token++;
    if (strncmp(token, "payd_", 5) == 0) return auth_api_key(a, token, out, why);
    if (strchr(token, '.')) return auth_jwt(a, token, out, why);
    *why = "unrecognized credential";
    return AUTH_INVALID;
}

int auth_apikey_create(app *a, const char *role, const char *description, char *out,
                       size_t out_len)
{
    if (role_parse(role) == ROLE_NONE || out_len < 5 + KEY_ID_LEN + 1 + KEY_SECRET_LEN + 1)
        return STORE_E_CHECK;
    uint8_t id_raw[KEY_ID_LEN / 2], secret_raw[KEY_SECRET_LEN / 2], hash[32];
    char id[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1], hash_hex[65];
    if (host_random_bytes(id_raw, sizeof id_raw) || host_random_bytes(secret_raw, sizeof secret_raw))
        return STORE_E_QUERY;
    host_hex(id_raw, sizeof id_raw, id);
    host_hex(secret_raw, sizeof secret_raw, secret);
    host_sha256(secret, KEY_SECRET_LEN, hash);
    host_hex(hash, 32, hash_hex);
    store_conn *c = store_acquire(a->db);
    if (!c) return STORE_E_UNAVAILABLE;
    const char *params[] = {id, hash_hex, role, description};
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_key_insert, 4, params, NULL);
    if (rc == STORE_OK) {
        char entity[32];
        snprintf(entity, sizeof entity, "api_key:%s", id);
        json_t *after = json_pack("{s:s, s:s}", "id", id, "role", role);
        rc = audit_write(c, entity, "cli", "api_key.created", NULL, NULL, after);
        json_decref(after);
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (rc == STORE_OK) snprintf(out, out_len, "payd_%s_%s", id, secret);
    explicit_bzero(secret, sizeof secret);
    explicit_bzero(secret_raw, sizeof secret_raw);
    return rc;
}
