/* ids.h - prefixed random identifiers (ord_..., pay_..., re_..., evt_...). */
#ifndef PAYD_IDS_H
#define PAYD_IDS_H

#include <stddef.h>

#define IDS_MAX 40

/* Writes "<prefix>_<20 random base32 chars>" into out (IDS_MAX bytes).
 * Thread-safe (OpenSSL's RNG). */
void ids_new(const char *prefix, char out[IDS_MAX]);

#endif
