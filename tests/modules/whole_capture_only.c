/*
 * whole_capture_only.c - modcheck_bad.c (with defect = none) advertising
 * capture_later without partial_capture: a provider that can only capture
 * an authorization in full. test_modules_compat.c shows that payd refuses
 * a partial capture on it with a 400 instead of sending the module an
 * amount it cannot honour.
 */
#define BAD_MODULE_NAME "whole_capture_only"
#define BAD_MODULE_CAPS (PAYD_CAP_CAPTURE_LATER | PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND)

#include "modcheck_bad.c"
