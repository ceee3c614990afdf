/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "prepared-claim.h"

typedef struct Manager Manager;

/* The manager's side of /metrics (manager-metrics.c): when systemd passed a socket named
 * "metrics", serve it from the event loop. Without one, nothing is set up. */
int manager_setup_metrics(Manager *m);
void manager_free_metrics(Manager *m);

/* The DRA service's observer calls this too: c prepared, or uid gone (c NULL). */
void manager_metrics_claim_changed(Manager *m, const char *uid, const PreparedClaim *c);
