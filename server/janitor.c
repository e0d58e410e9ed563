/* janitor.c - placeholder until the payments domain lands (see payments.c). */
#include "janitor.h"

void janitor_run(app *a)
{
    (void)a;
}
