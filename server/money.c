/*
 * money.c - currencies and amounts.
 *
 * Amounts are int64 minor units everywhere in payd; this table is the only
 * place that knows how many minor units a currency has (ISO 4217, active
 * codes). Most currencies have 2; the exceptions are listed explicitly.
 * Read-only data, safe from any thread.
 */
#include "money.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Active ISO 4217 codes with two decimals. */
static const char two_decimal[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS "
    "VED VES WST XCD YER ZAR ZMW ZWG ZWL";
/* Zero decimals. */
static const char zero_decimal[] =
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
/* Three decimals. */
static const char three_decimal[] = "BHD IQD JOD KWD LYD OMR TND";
/* Four decimals. */
static const char four_decimal[] = "CLF UYW";

static int in_list(const char *list, const char *code)
{
    for (const char *p = list; *p;) {
        if (strncmp(p, code, 3) == 0 && (p[3] == ' ' || p[3] == '\0')) return 1;
        p += strcspn(p, " ");
        while (*p == ' ') p++;
    }
    return 0;
}

int money_exponent(const char *code)
{
    if (!code || strlen(code) != 3) return -1;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z') return -1;
    if (in_list(zero_decimal, code)) return 0;
    if (in_list(three_decimal, code)) return 3;
    if (in_list(four_decimal, code)) return 4;
    if (in_list(two_decimal, code)) return 2;
    return -1;
}

int money_currency_normalize(const char *in, char out[4])
{
    if (!in || strlen(in) != 3) return -1;
    for (int i = 0; i < 3; i++) out[i] = (char)toupper((unsigned char)in[i]);
    out[3] = '\0';
    return money_exponent(out) < 0 ? -1 : 0;
}

/* Formats a minor-unit amount as a decimal string. 0, or -1 for an
 * unknown currency or when `buf` is too small. */
int money_format(int64_t amount, const char *currency, char *buf, size_t len)
{
    int exp = money_exponent(currency);
    if (exp < 0) return -1;
    int neg = amount < 0;
    uint64_t v = neg ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    int n;
    if (exp == 0) {
        n = snprintf(buf, len, "%s%llu", neg ? "-" : "", (unsigned long long)v);
    } else {
        uint64_t scale = 1;
        for (int i = 0; i < exp; i++) scale *= 10;
        n = snprintf(buf, len, "%s%llu.%0*llu", neg ? "-" : "", (unsigned long long)(v / scale), exp,
                     (unsigned long long)(v % scale));
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
