/*
 * ids.c - identifiers. 100 random bits in Crockford base32 after a type
 * prefix: unguessable (so ids leak nothing about volume) and readable in
 * logs. Ordering comes from created_at columns and sequences, not from ids.
 */
#include "ids.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "host.h"

void ids_new(const char *prefix, char out[IDS_MAX])
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    uint8_t raw[20];
    host_random_bytes(raw, sizeof raw);
    size_t n = (size_t)snprintf(out, IDS_MAX, "%s_", prefix);
    for (size_t i = 0; i < 20 && n + 1 < IDS_MAX; i++) out[n++] = alphabet[raw[i] & 31];
    out[n] = '\0';
}
