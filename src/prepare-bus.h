/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A prepared claim as the D-Bus objects show it (dbus/model.h). */

#include "dbus/model.h"
#include "checkpoint.h"

/*
 * One BusClaimDevice per GPU (a claim's results on one GPU share its summed limits),
 * the shared-region path under state_dir, prepared_usec = now. 0 or -ENOMEM.
 */
int prepare_claim_to_bus(const Checkpoint *c, const char *state_dir, BusClaim *ret);
