/*
 * cli_report.c - `payd report`: the same summary as GET
 * /v1/admin/reports/summary, for accountants, read straight from the
 * database.
 *
 *   payd report -c FILE --from D --to D [--group-by day|gateway|currency]
 *               [--format csv|json]
 *
 * JSON is exactly the API's answer. CSV has a header row and one row per
 * currency (and day or gateway); every amount is given twice, as integer
 * minor units and as a decimal string placed by the currency's exponent
 * (money_format), so no floating point is ever involved.
 *
 * Runs once on the main thread.
 */
#include "cli_report.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "reports.h"

static void report_usage(void)
{
    fprintf(stderr, "usage: payd report [-c FILE] --from DATE --to DATE [--group-by day|gateway|currency]"
                    " [--format csv|json]\n"
                    "       DATE is YYYY-MM-DD (UTC midnight) or RFC 3339; --to is exclusive\n");
}

int cli_report_parse(int argc, char **argv, cli_report_opts *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'},   {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},       {"group-by", required_argument, NULL, 'g'},
        {"format", required_argument, NULL, 'F'},   {NULL, 0, NULL, 0}};
    *o = (cli_report_opts){.config = "conf/payd.conf", .group_by = "currency", .format = "csv"};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'f': o->from = optarg; break;
        case 't': o->to = optarg; break;
        case 'g': o->group_by = optarg; break;
        case 'F': o->format = optarg; break;
        default: report_usage(); return 2;
        }
    }
    if (optind != argc || !o->from || !o->to) {
        report_usage();
        return 2;
    }
    if (strcmp(o->format, "csv") != 0 && strcmp(o->format, "json") != 0) {
        fprintf(stderr, "payd: --format must be csv or json\n");
        return 2;
    }
    if (!reports_group_by_valid(o->group_by)) {
        fprintf(stderr, "payd: --group-by must be day, gateway or currency\n");
        return 2;
    }
    return 0;
}

/* One CSV field: quoted only when it must be. */
static void csv_field(const char *s, int first)
{
    if (!first) putchar(',');
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void csv_int(long long v)
{
    printf(",%lld", v);
}

/* An amount as minor units, then as a decimal ("" for an unknown code). */
static void csv_amount(json_t *row, const char *key, const char *currency)
{
    long long v = json_integer_value(json_object_get(row, key));
    char dec[48];
    csv_int(v);
    csv_field(money_format(v, currency, dec, sizeof dec) == 0 ? dec : "", 0);
}

static const char *const amount_keys[] = {"gross_captured", "refunded", "disputed", "fees", "net", NULL};

static void print_csv(json_t *report, const char *group_by)
{
    int grouped = strcmp(group_by, "currency") != 0;
    csv_field("currency", 1);
    if (grouped) csv_field(group_by, 0);
    for (int k = 0; amount_keys[k]; k++) printf(",%s,%s_decimal", amount_keys[k], amount_keys[k]);
    printf(",dispute_count,payment_count");
    for (int s = 0; reports_payment_statuses[s]; s++) printf(",payments_%s", reports_payment_statuses[s]);
    printf(",success_rate\n");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(report, "data"), i, row) {
        const char *currency = json_string_value(json_object_get(row, "currency"));
        csv_field(currency, 1);
        if (grouped) csv_field(json_string_value(json_object_get(row, group_by)), 0);
        for (int k = 0; amount_keys[k]; k++) csv_amount(row, amount_keys[k], currency);
        csv_int(json_integer_value(json_object_get(row, "dispute_count")));
        csv_int(json_integer_value(json_object_get(row, "payment_count")));
        json_t *by = json_object_get(row, "payments_by_status");
        for (int s = 0; reports_payment_statuses[s]; s++)
            csv_int(json_integer_value(json_object_get(by, reports_payment_statuses[s])));
        csv_field(json_string_value(json_object_get(row, "success_rate")), 0);
        putchar('\n');
    }
}

int cli_report_run(app *a, const cli_report_opts *o)
{
    report_range rg;
    fault f;
    json_t *out = NULL;
    if (reports_range(a->cfg, o->from, o->to, &rg, &f) != 0 ||
        reports_summary(a->db, &rg, o->group_by, &out, &f) != 0) {
        fprintf(stderr, "payd: report: %s\n", f.message);
        return f.status == 400 ? 2 : 1;
    }
    if (!strcmp(o->format, "json")) {
        char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
    } else {
        print_csv(out, o->group_by);
    }
    json_decref(out);
    return fflush(stdout) == 0 ? 0 : 1;
}
