/* routing.c - gateway selection (see routing.h). Read-only; thread-safe. */
#include "routing.h"

#include <string.h>

instance *routing_pick(app *a, const char *requested, const char *currency, fault *f)
{
    if (requested) {
        instance *in = modules_gateway(a->mods, requested);
        if (!in) fault_invalid(f, "gateway_unknown", "gateway", "no gateway instance named '%.64s'", requested);
        return in;
    }
    for (size_t i = 0; i < a->cfg->route_count; i++)
        if (strcmp(a->cfg->routes[i].currency, currency) == 0)
            return modules_gateway(a->mods, a->cfg->routes[i].gateway);
    if (a->cfg->route_default) return modules_gateway(a->mods, a->cfg->route_default);
    if (a->mods->gateway_count == 1) return a->mods->gateways[0];
    fault_invalid(f, "gateway_required", "gateway",
                  "name a gateway: none is set as [routing] default for %s", currency);
    return NULL;
}
