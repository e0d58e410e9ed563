/* cli_report.h - `payd report`: the summary report on the command line. */
#ifndef PAYD_CLI_REPORT_H
#define PAYD_CLI_REPORT_H

#include "app.h"

typedef struct cli_report_opts {
    const char *config;   /* -c FILE (default conf/payd.conf) */
    const char *from, *to;
    const char *group_by; /* day | gateway | currency (default) */
    const char *format;   /* csv (default) | json */
} cli_report_opts;

/* Parses the arguments after `report`. 0, or 2 (usage printed). */
int cli_report_parse(int argc, char **argv, cli_report_opts *o);
/* Prints the report for an opened app (database only). Returns the exit
 * code: 0 printed, 1 the database failed, 2 bad range or group_by. */
int cli_report_run(app *a, const cli_report_opts *o);

#endif
