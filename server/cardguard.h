/* cardguard.h - refuse card numbers (PANs) anywhere in a request. */
#ifndef PAYD_CARDGUARD_H
#define PAYD_CARDGUARD_H

#include <jansson.h>
#include <stddef.h>

/* 1 if `s` (len bytes) contains a run of 13-19 digits, optionally split by
 * single spaces or dashes, that passes the Luhn check and is not an allowed
 * test card. */
int cardguard_text_has_pan(const char *s, size_t len, int allow_test_cards);

/*
 * Walks a JSON document, keys and values. Returns 0 when clean; otherwise 1
 * and writes the
 * dotted path of the first offending field ("items.0.name") into path.
 * With allow_test_cards, the mock gateway's documented test numbers pass.
 */
int cardguard_json_has_pan(json_t *doc, int allow_test_cards, char *path, size_t path_len);

/* 1 if the digits of `s` are one of the mock's documented test cards. */
int cardguard_is_test_card(const char *s);

#endif
