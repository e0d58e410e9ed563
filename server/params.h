/*
 * params.h - checks shared by every request body the domain reads.
 *
 * A body with a member payd does not know is refused, never ignored: a
 * typo such as "amonut" must not silently become "the whole amount".
 */
#ifndef PAYD_PARAMS_H
#define PAYD_PARAMS_H

#include <jansson.h>

#include "fault.h"

/* 0 when every member of the object `in` (NULL: none) is named in
 * `allowed` (NULL-terminated); otherwise -1 with a 400 parameter_unknown
 * fault naming the first stranger. */
int params_only(json_t *in, const char *const *allowed, fault *f);

#endif
