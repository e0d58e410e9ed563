/*
 * reports.c - what accountants ask of payd: money by currency over a period.
 *
 * Every figure about money is a sum over the ledger, the append-only record
 * of what moved, so a report can never disagree with it; payment counts come
 * from the payments table. Amounts of different currencies are never added:
 * every row is keyed by currency first. Ranges are half-open [from, to),
 * days are UTC days, and a range is bounded by [admin] report_max_days so one
 * request cannot make the database scan years of rows.
 *
 * Stateless; every function may run on many threads at once.
 */
#include "reports.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *const reports_payment_statuses[] = {
    "requires_payment_method", "requires_confirmation", "requires_action", "processing",
    "requires_capture", "succeeded", "partially_refunded", "refunded", "disputed", "failed",
    "canceled", NULL};

#define US_PER_S 1000000LL

/* Exactly n ASCII digits at s. */
static int read_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int reports_parse_time(const char *s, int64_t *out_us)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, off = 0;
    int64_t frac_us = 0;
    if (!s || strlen(s) > 40) return -1;
    if (read_digits(s, 4, &y) || s[4] != '-' || read_digits(s + 5, 2, &mo) || s[7] != '-' ||
        read_digits(s + 8, 2, &d))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return -1;
    const char *p = s + 10;
    if (*p) {
        if ((*p != 'T' && *p != 't') || read_digits(p + 1, 2, &h) || p[3] != ':' ||
            read_digits(p + 4, 2, &mi) || p[6] != ':' || read_digits(p + 7, 2, &sec))
            return -1;
        if (h > 23 || mi > 59 || sec > 59) return -1;
        p += 9;
        if (*p == '.') {
            int n = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, n++)
                if (n < 6) frac_us = frac_us * 10 + (*p - '0');
            if (n == 0 || n > 9) return -1;
            for (; n < 6; n++) frac_us *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (read_digits(p + 1, 2, &oh) || p[3] != ':' || read_digits(p + 4, 2, &om) || oh > 23 || om > 59)
                return -1;
            off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
            p += 6;
        } else {
            return -1;
        }
        if (*p) return -1;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    *out_us = ((int64_t)t - off) * US_PER_S + frac_us;
    return 0;
}

/* RFC 3339 in UTC, with microseconds only when there are some. */
static void format_time(int64_t us, char *out, size_t len)
{
    time_t t = (time_t)(us / US_PER_S);
    int64_t frac = us % US_PER_S;
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac) snprintf(out, len, "%.19s.%06dZ", base, (int)frac);
    else snprintf(out, len, "%.19sZ", base);
}

int reports_range(const config *cfg, const char *from, const char *to, report_range *out, fault *f)
{
    memset(out, 0, sizeof *out);
    if (!from) return fault_invalid(f, "parameter_missing", "from", "from is required (YYYY-MM-DD or RFC 3339)");
    if (!to) return fault_invalid(f, "parameter_missing", "to", "to is required (YYYY-MM-DD or RFC 3339)");
    if (reports_parse_time(from, &out->from_us) != 0)
        return fault_invalid(f, "parameter_invalid", "from",
                             "from must be a date (YYYY-MM-DD) or an RFC 3339 date-time, from 1970 on");
    if (reports_parse_time(to, &out->to_us) != 0)
        return fault_invalid(f, "parameter_invalid", "to",
                             "to must be a date (YYYY-MM-DD) or an RFC 3339 date-time, from 1970 on");
    if (out->from_us > out->to_us)
        return fault_invalid(f, "range_invalid", "from", "from must not be after to (to is exclusive)");
    int64_t max_us = (int64_t)cfg->report_max_days * 86400 * US_PER_S;
    if (out->to_us - out->from_us > max_us)
        return fault_invalid(f, "range_too_large", "to", "the range may span at most %d days ([admin] report_max_days)",
                             cfg->report_max_days);
    format_time(out->from_us, out->from_text, sizeof out->from_text);
    format_time(out->to_us, out->to_text, sizeof out->to_text);
    snprintf(out->from_param, sizeof out->from_param, "%lld", (long long)out->from_us);
    snprintf(out->to_param, sizeof out->to_param, "%lld", (long long)out->to_us);
    return 0;
}

int reports_group_by_valid(const char *g)
{
    return g && (!strcmp(g, "day") || !strcmp(g, "gateway") || !strcmp(g, "currency"));
}

/* The group key of a row of table alias t: $3 picks the dimension. */
#define GROUP_KEY(t)                                                                             \
    "CASE $3::text WHEN 'gateway' THEN " t ".gateway"                                            \
    " WHEN 'day' THEN to_char(" t ".created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') ELSE '' END"
#define IN_RANGE(t)                                                                              \
    t ".created_at >= 'epoch'::timestamptz + $1::bigint * interval '1 microsecond' AND " t        \
    ".created_at < 'epoch'::timestamptz + $2::bigint * interval '1 microsecond'"

STORE_STMT(stmt_summary,
           "WITH money AS ("
           " SELECT l.currency, " GROUP_KEY("l") " AS k,"
           "  coalesce(sum(l.amount) FILTER (WHERE l.entry_type IN ('charge', 'capture')), 0)::bigint AS gross,"
           "  coalesce(sum(l.amount) FILTER (WHERE l.entry_type = 'refund'), 0)::bigint AS refunded,"
           "  coalesce(sum(l.amount) FILTER (WHERE l.entry_type = 'chargeback'), 0)::bigint AS disputed,"
           "  coalesce(sum(l.amount) FILTER (WHERE l.entry_type = 'fee'), 0)::bigint AS fees,"
           "  count(*) FILTER (WHERE l.entry_type = 'chargeback') AS disputes"
           " FROM ledger l WHERE " IN_RANGE("l") " GROUP BY 1, 2),"
           " counted AS ("
           " SELECT p.currency, " GROUP_KEY("p") " AS k, p.status, count(*) AS n"
           " FROM payments p WHERE " IN_RANGE("p") " GROUP BY 1, 2, 3),"
           " pay AS ("
           " SELECT currency, k, sum(n)::bigint AS total, json_object_agg(status, n)::text AS by_status,"
           "  coalesce(sum(n) FILTER (WHERE status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed')), 0)"
           "   ::bigint AS settled,"
           "  coalesce(sum(n) FILTER (WHERE status = 'failed'), 0)::bigint AS failed"
           " FROM counted GROUP BY 1, 2)"
           " SELECT coalesce(m.currency, p.currency) AS currency, coalesce(m.k, p.k) AS k,"
           " coalesce(m.gross, 0) AS gross, coalesce(m.refunded, 0) AS refunded,"
           " coalesce(m.disputed, 0) AS disputed, coalesce(m.fees, 0) AS fees,"
           " coalesce(m.disputes, 0) AS disputes, coalesce(p.total, 0) AS payments, p.by_status,"
           " CASE WHEN p.settled + p.failed > 0"
           "  THEN round(p.settled::numeric / (p.settled + p.failed), 4)::text END AS success_rate"
           " FROM money m FULL JOIN pay p ON p.currency = m.currency AND p.k = m.k"
           " ORDER BY 1, 2");

/* One summary row as JSON, every status present (zero when none). */
static json_t *summary_row(const PGresult *r, int i, const char *group_by)
{
    int64_t gross = store_i64(r, i, "gross"), refunded = store_i64(r, i, "refunded");
    int64_t disputed = store_i64(r, i, "disputed"), fees = store_i64(r, i, "fees");
    json_t *row = json_object();
    json_object_set_new(row, "currency", json_string(store_val(r, i, "currency")));
    if (strcmp(group_by, "currency") != 0) json_object_set_new(row, group_by, json_string(store_val(r, i, "k")));
    json_object_set_new(row, "gross_captured", json_integer(gross));
    json_object_set_new(row, "refunded", json_integer(refunded));
    json_object_set_new(row, "disputed", json_integer(disputed));
    json_object_set_new(row, "fees", json_integer(fees));
    json_object_set_new(row, "net", json_integer(gross - refunded - disputed - fees));
    json_object_set_new(row, "dispute_count", json_integer(store_i64(r, i, "disputes")));
    json_object_set_new(row, "payment_count", json_integer(store_i64(r, i, "payments")));
    const char *by = store_val(r, i, "by_status");
    json_t *counts = by ? json_loads(by, 0, NULL) : NULL;
    json_t *statuses = json_object();
    for (int s = 0; reports_payment_statuses[s]; s++) {
        json_t *n = json_object_get(counts, reports_payment_statuses[s]);
        json_object_set_new(statuses, reports_payment_statuses[s], json_integer(n ? json_integer_value(n) : 0));
    }
    json_decref(counts);
    json_object_set_new(row, "payments_by_status", statuses);
    const char *rate = store_val(r, i, "success_rate");
    json_object_set_new(row, "success_rate", rate ? json_string(rate) : json_null());
    return row;
}

int reports_summary(store *db, const report_range *rg, const char *group_by, json_t **out, fault *f)
{
    if (!group_by) group_by = "currency";
    if (!reports_group_by_valid(group_by))
        return fault_invalid(f, "parameter_invalid", "group_by", "group_by must be day, gateway or currency");
    store_conn *c = store_acquire(db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *params[] = {rg->from_param, rg->to_param, group_by};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_summary, 3, params, &r);
    store_release(c);
    if (rc != STORE_OK) return fault_store(f, rc);
    json_t *data = json_array();
    for (int i = 0; i < PQntuples(r); i++) json_array_append_new(data, summary_row(r, i, group_by));
    PQclear(r);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:o}", "object", "report.summary", "from", rg->from_text, "to",
                     rg->to_text, "group_by", group_by, "data", data);
    return 0;
}
