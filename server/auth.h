/* auth.h - who is calling: API keys and end-user JWTs. */
#ifndef PAYD_AUTH_H
#define PAYD_AUTH_H

#include <stddef.h>

struct app;

enum { PRINCIPAL_NONE = 0, PRINCIPAL_KEY = 1, PRINCIPAL_USER = 2 };
enum { ROLE_NONE = 0, ROLE_USER = 1, ROLE_MERCHANT = 2, ROLE_ADMIN = 3 };

typedef struct principal {
    int kind;
    int role;
    char id[128];     /* API key id, or the JWT's sub */
    char actor[160];  /* "key:<id>" or "user:<sub>", for audit and scoping */
} principal;

/* Return codes of auth_authenticate. */
enum { AUTH_OK = 0, AUTH_MISSING = -1, AUTH_INVALID = -2, AUTH_UNAVAILABLE = -3 };

/*
 * Resolves an Authorization header. On AUTH_INVALID `why` says what was
 * wrong in words safe to return (never the credential). Thread-safe.
 */
int auth_authenticate(struct app *a, const char *authorization, principal *out,
                      const char **why);

/* Creates a key with `role` ("admin" or "merchant"); writes the one-time
 * plaintext into out. 0 or a STORE_E_* code. */
int auth_apikey_create(struct app *a, const char *role, const char *description, char *out,
                       size_t out_len);

const char *auth_role_name(int role);

#endif
