/* fault.h - why a domain operation refused, in terms the API can answer with. */
#ifndef PAYD_FAULT_H
#define PAYD_FAULT_H

/*
 * Domain functions return 0 or -1 and, on -1, fill a caller-owned fault.
 * `status` is the HTTP status the API layer should answer with; `type`,
 * `code` and `param` go into the one error shape unchanged. Messages never
 * contain card data, secrets or tokens.
 */
typedef struct fault {
    int status;
    const char *type;  /* static strings */
    const char *code;
    const char *param;
    char message[400];
} fault;

int fault_set(fault *f, int status, const char *type, const char *code, const char *param,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Shorthands for the common kinds. Each returns -1. */
int fault_invalid(fault *f, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int fault_not_found(fault *f, const char *what, const char *id);
int fault_store(fault *f, int store_rc);

#endif
