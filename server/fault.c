/* fault.c - filling a fault (see fault.h). */
#include "fault.h"

#include <stdarg.h>
#include <stdio.h>

#include "store.h"

int fault_set(fault *f, int status, const char *type, const char *code, const char *param,
              const char *fmt, ...)
{
    f->status = status;
    f->type = type;
    f->code = code;
    f->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return -1;
}

int fault_invalid(fault *f, const char *code, const char *param, const char *fmt, ...)
{
    f->status = 400;
    f->type = "invalid_request_error";
    f->code = code;
    f->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return -1;
}

int fault_not_found(fault *f, const char *what, const char *id)
{
    return fault_set(f, 404, "invalid_request_error", "resource_missing", NULL, "no such %s: '%.64s'",
                     what, id ? id : "");
}

int fault_store(fault *f, int store_rc)
{
    if (store_rc == STORE_E_UNAVAILABLE || store_rc == STORE_E_RETRY)
        return fault_set(f, 503, "api_error", "service_unavailable", NULL,
                         "the database is unavailable or busy; retry shortly");
    return fault_set(f, 500, "api_error", "internal_error", NULL, "internal error");
}
