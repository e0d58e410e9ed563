/* money.h - ISO 4217 currencies and integer minor-unit amounts. */
#ifndef PAYD_MONEY_H
#define PAYD_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* The minor-unit exponent of an ISO 4217 code (upper case), or -1 if the
 * code is unknown. */
int money_exponent(const char *code);
/* Upper-cases a 3-letter code into out[4]; -1 if it is not 3 letters or unknown. */
int money_currency_normalize(const char *in, char out[4]);
/* Formats 123456 KWD as "123.456", 1000 JPY as "1000" into buf. */
int money_format(int64_t amount, const char *currency, char *buf, size_t len);

#endif
