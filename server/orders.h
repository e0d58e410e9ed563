/* orders.h - orders: totals, numbering, and the order state machine. */
#ifndef PAYD_ORDERS_H
#define PAYD_ORDERS_H

#include <jansson.h>
#include <stdint.h>

#include "context.h"
#include "fault.h"

/* SQL expression for an order's JSON representation (alias o). */
#define ORDER_JSON                                                                               \
    "json_build_object('id', o.id, 'object', 'order', 'number', o.number, 'user_id', o.user_id,"  \
    " 'status', o.status, 'fulfilment_status', o.fulfilment_status, 'currency', o.currency,"      \
    " 'subtotal', o.subtotal, 'tax', o.tax, 'shipping', o.shipping, 'total', o.total,"            \
    " 'amount_paid', o.amount_paid, 'amount_refunded', o.amount_refunded, 'items', o.items,"      \
    " 'customer_email', o.customer_email, 'shipping_address', o.shipping_address,"                \
    " 'billing_address', o.billing_address, 'shipping_info', o.shipping_info,"                    \
    " 'metadata', o.metadata, 'created', extract(epoch FROM o.created_at)::bigint,"               \
    " 'updated', extract(epoch FROM o.updated_at)::bigint)::text"

int orders_create(op_ctx *x, json_t *in, json_t **out, fault *f);
int orders_get(op_ctx *x, const char *id, json_t **out, fault *f);
typedef struct order_filter {
    const char *status, *user_id, *starting_after;
    const char *currency;                  /* upper-case ISO 4217, or NULL */
    const char *created_gte, *created_lte; /* unix seconds, validated digits */
    int limit;
} order_filter;

int orders_list(op_ctx *x, const order_filter *flt, json_t **out, fault *f);
int orders_cancel(op_ctx *x, const char *id, json_t **out, fault *f);
int orders_update(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

/* Used by payments and refunds inside their transactions (row lock held
 * by the caller or taken here). */
typedef struct order_row {
    char id[48];
    char status[24];
    char currency[4];
    char user_id[128];
    int has_user;
    int64_t total, amount_paid, amount_refunded;
    char customer_email[256];
    char number[32];
    json_t *before;   /* representation when locked (owned: orders_row_release) */
} order_row;

/* Locks (FOR UPDATE) an order in the caller's transaction and loads it.
 * STORE_OK, 1 when not found, or a STORE_E_* code. */
int orders_lock(store_conn *c, const char *id, order_row *o);
void orders_row_release(order_row *o);
/* The payment for this order started / was paid / failed or was canceled /
 * was refunded. Each writes audit and events as needed. */
int orders_payment_started(op_ctx *x, store_conn *c, const order_row *o);
int orders_payment_succeeded(op_ctx *x, store_conn *c, const char *order_id, int64_t amount);
int orders_payment_released(op_ctx *x, store_conn *c, const char *order_id);
int orders_refunded(op_ctx *x, store_conn *c, const char *order_id, int64_t amount);
/* A settled payment captured more than the order recorded as paid. */
int orders_payment_more_captured(op_ctx *x, store_conn *c, const char *order_id, int64_t amount);

#endif
