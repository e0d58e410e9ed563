/*
 * modules/paypal/paypal_amount.c - minor units and PayPal's decimal
 * strings.
 *
 * payd keeps money as integer minor units; PayPal's Money object carries
 * {"currency_code":"USD","value":"19.99"}, a decimal string with as many
 * decimals as the currency has. The conversion is done on digits, never
 * through floating point:
 *   1999 USD (exponent 2) <-> "19.99"
 *    500 JPY (exponent 0) <-> "500"
 *   1234 KWD (exponent 3) <-> "1.234"
 *
 * Two PayPal rules differ from ISO 4217: HUF and TWD have two decimals in
 * ISO (and in payd) but PayPal takes them in whole units only. Such an
 * amount is sent without decimals when it is whole and refused otherwise.
 *
 * Webhooks carry no exponent from the core, so the module keeps the ISO
 * exceptions (the codes whose exponent is not 2) to read an event's
 * amount in the same minor units as server/money.c.
 *
 * Stateless and thread-safe.
 */
#include "paypal.h"

#include <stdio.h>
#include <string.h>

/* ISO 4217 codes whose exponent is not 2, as in server/money.c. */
static const char paypal_zero_decimal[] =
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
static const char paypal_three_decimal[] = "BHD IQD JOD KWD LYD OMR TND";
static const char paypal_four_decimal[] = "CLF UYW";
/* Two decimals in ISO, whole units at PayPal. */
static const char paypal_whole_only[] = "HUF TWD";

static int paypal_in_list(const char *list, const char *code)
{
    const char *p;

    for (p = list; *p != '\0'; p += (p[3] == ' ' ? 4 : 3))
        if (strncmp(p, code, 3) == 0)
            return 1;
    return 0;
}

int paypal_currency_exponent(const char *currency)
{
    if (!payd_currency_ok(currency))
        return -1;
    if (paypal_in_list(paypal_zero_decimal, currency))
        return 0;
    if (paypal_in_list(paypal_three_decimal, currency))
        return 3;
    if (paypal_in_list(paypal_four_decimal, currency))
        return 4;
    return 2;
}

static int64_t paypal_pow10(int exp)
{
    int64_t p = 1;

    while (exp-- > 0)
        p *= 10;
    return p;
}

int paypal_amount_format(int64_t minor, const char *currency, int exp,
                         char out[PAYPAL_AMOUNT_TEXT_MAX])
{
    int64_t scale, units, frac;

    out[0] = '\0';
    if (minor < 0 || exp < 0 || exp > 4)
        return PAYD_E_INVALID;
    scale = paypal_pow10(exp);
    units = minor / scale;
    frac = minor % scale;
    if (currency != NULL && paypal_in_list(paypal_whole_only, currency)) {
        if (frac != 0)
            return PAYD_E_INVALID;
        exp = 0;
    }
    if (exp == 0)
        snprintf(out, PAYPAL_AMOUNT_TEXT_MAX, "%lld", (long long)units);
    else
        snprintf(out, PAYPAL_AMOUNT_TEXT_MAX, "%lld.%0*lld", (long long)units,
                 exp, (long long)frac);
    return PAYD_OK;
}

int paypal_amount_parse(const char *value, int exp, int64_t *minor)
{
    const int64_t limit = INT64_MAX / 10000;
    int64_t units = 0, frac = 0;
    const char *p = value;
    int ndigits = 0, nfrac = 0;

    *minor = 0;
    if (value == NULL || exp < 0 || exp > 4)
        return PAYD_E_INVALID;
    for (; *p >= '0' && *p <= '9'; p++, ndigits++) {
        units = units * 10 + (*p - '0');
        if (units > limit || ndigits >= 15)
            return PAYD_E_INVALID;
    }
    if (ndigits == 0)
        return PAYD_E_INVALID;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
            if (nfrac >= exp)
                return PAYD_E_INVALID;
            frac = frac * 10 + (*p - '0');
        }
        if (nfrac == 0)
            return PAYD_E_INVALID;
    }
    if (*p != '\0')
        return PAYD_E_INVALID;
    *minor = units * paypal_pow10(exp) + frac * paypal_pow10(exp - nfrac);
    return PAYD_OK;
}

int paypal_amount_read(json_t *o, int64_t *minor, const char **currency)
{
    const char *code = paypal_jstr(o, "currency_code");
    int exp = paypal_currency_exponent(code);

    *minor = 0;
    if (currency != NULL)
        *currency = NULL;
    if (exp < 0)
        return PAYD_E_INVALID;
    if (paypal_amount_parse(paypal_jstr(o, "value"), exp, minor) != PAYD_OK)
        return PAYD_E_INVALID;
    if (currency != NULL)
        *currency = code;
    return PAYD_OK;
}
