/* methods.h - customers and their saved payment methods. */
#ifndef PAYD_METHODS_H
#define PAYD_METHODS_H

#include <jansson.h>

#include "context.h"
#include "fault.h"

int methods_customer_create(op_ctx *x, json_t *in, json_t **out, int *status, fault *f);
int methods_customer_get(op_ctx *x, const char *id, json_t **out, fault *f);
int methods_save(op_ctx *x, const char *customer_id, json_t *in, json_t **out, fault *f);
int methods_list(op_ctx *x, const char *customer_id, json_t **out, fault *f);
int methods_delete(op_ctx *x, const char *customer_id, const char *pm_id, json_t **out, fault *f);
int methods_set_default(op_ctx *x, const char *customer_id, const char *pm_id, json_t **out, fault *f);

/*
 * For a payment: resolves payd's saved method id `pm_id` to the provider
 * token, the provider customer ref and the gateway. 0 when found (strings in
 * the arena), 1 when `pm_id` is not a saved method, or -1 with a fault (not
 * the caller's, or the database failed).
 */
int methods_resolve(op_ctx *x, store_conn *c, const char *pm_id, const char **token,
                    const char **customer_id, const char **customer_ref, const char **gateway,
                    fault *f);

#endif
