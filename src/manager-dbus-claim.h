/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The manager's side of org.projecthami.Dra1: a prepared claim as the D-Bus objects show
 * it (dbus/model.h). */

#include "prepared-claim.h"
#include "dbus/model.h"

/*
 * One BusClaimDevice per GPU (a claim's results on one GPU share its summed limits),
 * the shared-region path under state_dir, prepared_usec = now. 0 or -ENOMEM.
 */
int manager_dbus_claim_from_prepared(const PreparedClaim *c, const char *state_dir, BusClaim *ret);
