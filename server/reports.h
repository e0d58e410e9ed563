/* reports.h - admin reports: date ranges and the money summary. */
#ifndef PAYD_REPORTS_H
#define PAYD_REPORTS_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "fault.h"
#include "store.h"

/* A half-open time range [from, to) in microseconds since the Unix epoch,
 * plus its texts: RFC 3339 UTC for answers, decimal microseconds for SQL. */
typedef struct report_range {
    int64_t from_us, to_us;
    char from_text[40], to_text[40];
    char from_param[24], to_param[24];
} report_range;

/*
 * Parses YYYY-MM-DD (midnight UTC) or an RFC 3339 date-time with a `Z` or
 * numeric offset (fractional seconds kept to the microsecond) into
 * microseconds since the epoch. 0, or -1 when malformed or out of
 * 1970..9999.
 */
int reports_parse_time(const char *text, int64_t *out_us);

/*
 * Checks the `from` and `to` parameters (both required) of a report or a
 * reconciliation: each parses, from <= to, and the range spans at most
 * [admin] report_max_days. 0, or -1 with a 400 fault naming the parameter.
 */
int reports_range(const config *cfg, const char *from, const char *to, report_range *out, fault *f);

/* 1 when `group_by` is day, gateway or currency. */
int reports_group_by_valid(const char *group_by);

/*
 * GET /v1/admin/reports/summary. One row per currency and group (`day`:
 * UTC calendar day; `gateway`: instance name; `currency`: none), sorted.
 * Money comes from the ledger rows created in the range, so it equals the
 * ledger by construction: gross_captured (charge + capture), refunded,
 * disputed (chargeback), fees, net = gross - refunded - disputed - fees,
 * dispute_count (chargeback rows). Payment counts by status come from the
 * payments created in the range; success_rate is settled / (settled +
 * failed) as a decimal string with 4 places (null when nothing settled or
 * failed), where settled is succeeded, partially_refunded, refunded or
 * disputed. Amounts of different currencies are never added together.
 * 0 with *out (caller owns), or -1 with a fault.
 */
int reports_summary(store *db, const report_range *rg, const char *group_by, json_t **out, fault *f);

/* The payment statuses, in lifecycle order (NULL-terminated): the keys of
 * a summary row's payments_by_status. */
extern const char *const reports_payment_statuses[];

#endif
