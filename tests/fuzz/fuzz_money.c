/*
 * tests/fuzz/fuzz_money.c - currencies and amounts (server/money.c). The
 * currency code of a request body reaches money_currency_normalize as the
 * client sent it; amounts are any int64.
 *
 * Input: 8 bytes of amount (little endian), 1 byte of buffer size, then the
 * currency text (NUL-terminated copy; shorter inputs use "USD"). Besides
 * crashes, it checks that
 *   - normalize accepts exactly the codes whose upper case has an exponent;
 *   - a formatted amount reads back to the same amount, with exactly
 *     `exponent` decimals, and never overflows the buffer it was given.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

static void fail(const char *what, long long amount, const char *cur,
                 const char *text)
{
    fprintf(stderr, "INVARIANT: %s (amount %lld, currency \"%s\", text \"%s\")\n",
            what, amount, cur, text != NULL ? text : "");
    abort();
}

/* Parse "-123.45" back into minor units at exponent `exp`. */
static int read_back(const char *s, int exp, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v = 0;
    int decimals = -1;

    if (neg)
        s++;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s == '.') {
            if (decimals >= 0)
                return -1;
            decimals = 0;
            continue;
        }
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        if (decimals >= 0)
            decimals++;
    }
    if ((exp == 0 && decimals != -1) || (exp > 0 && decimals != exp))
        return -1;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t amount = 0;
    size_t buflen = 64;
    char cur[64] = "USD", norm[4], upper[64];

    if (size >= 8) {
        uint64_t u = 0;

        for (int i = 0; i < 8; i++)
            u |= (uint64_t)data[i] << (8 * i);
        amount = (int64_t)u;
        data += 8;
        size -= 8;
    }
    if (size >= 1) {
        buflen = data[0] % 40;
        data++;
        size--;
    }
    if (size > 0) {
        size_t n = size < sizeof cur - 1 ? size : sizeof cur - 1;

        memcpy(cur, data, n);
        cur[n] = '\0';
    }

    int exp = money_exponent(cur);
    int nrc = money_currency_normalize(cur, norm);
    size_t clen = strlen(cur);

    for (size_t i = 0; i <= clen; i++)
        upper[i] = (char)toupper((unsigned char)cur[i]);
    if (nrc == 0 && (money_exponent(norm) < 0 || strcmp(norm, upper) != 0))
        fail("normalize accepted a code it cannot use", amount, cur, norm);
    if (nrc != 0 && clen == 3 && money_exponent(upper) >= 0)
        fail("normalize refused a known code", amount, cur, NULL);
    if (exp >= 0 && money_exponent(norm) != exp)
        fail("normalize changed the exponent", amount, cur, norm);

    /* Exact-size heap buffer: ASan sees any write past buflen. */
    char *buf = malloc(buflen ? buflen : 1);
    if (buf == NULL)
        return 0;
    int frc = money_format(amount, cur, buf, buflen);
    if (frc == 0) {
        int64_t back;

        if (exp < 0)
            fail("formatted an unknown currency", amount, cur, buf);
        if (memchr(buf, '\0', buflen) == NULL)
            fail("format left the buffer unterminated", amount, cur, NULL);
        if (read_back(buf, exp, &back) != 0 || back != amount)
            fail("formatted amount does not read back", amount, cur, buf);
    } else if (exp >= 0 && buflen >= 32) {
        fail("a 32-byte buffer was too small", amount, cur, NULL);
    }
    free(buf);
    return 0;
}
