/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One checkpoint file per prepared claim: <state dir>/checkpoints/<claim uid>.ckpt.
 * Preparing one claim writes one small file (the cost does not grow with the number
 * of claims). The file is
 *
 *   "HAMI-DRA-CHECKPOINT 2 <crc32c as 8 hex digits> <payload length> <spec length>\n"
 *   <payload> <spec>
 *
 * with a JSON payload (claim identity, boot ID, the devices answered to the kubelet,
 * the limits for the audit log) followed by the CDI spec text, so the spec can be
 * rewritten after a reboot without the API server; the CRC covers both. Format 1,
 * still read, had no spec length and the spec as the payload's "cdiSpec" string. It is
 * written atomically (temp, fsync, rename, fsync of the directory) and read back as
 * untrusted input (fuzz-checkpoint).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prepared-claim.h"

#define CHECKPOINT_VERSION 2   /* written; 1 is still read */
#define CHECKPOINT_FILE_MAX (256 * 1024)
#define CHECKPOINT_DIR_NAME "checkpoints"
#define CHECKPOINT_SUFFIX ".ckpt"

/* Pure: struct <-> bytes. decode: -EBADMSG (damaged/not ours), -EPROTONOSUPPORT (other version). */
int checkpoint_encode(const PreparedClaim *c, char **ret, size_t *ret_len);
int checkpoint_decode(const void *data, size_t len, PreparedClaim *ret);

/* Files in <state dir>/checkpoints. save creates the directory if needed. */
int checkpoint_save(const char *state_dir, const PreparedClaim *c);
int checkpoint_load(const char *state_dir, const char *uid, PreparedClaim *ret); /* -ENOENT if none */
int checkpoint_remove(const char *state_dir, const char *uid);                 /* -ENOENT if none */

/* The same relative to the open <state dir>/checkpoints directory. */
int checkpoint_save_at(int dir_fd, const PreparedClaim *c);
int checkpoint_load_at(int dir_fd, const char *uid, PreparedClaim *ret);
int checkpoint_remove_at(int dir_fd, const char *uid);

/* CRC-32C (Castagnoli), as in iSCSI/ext4: crc32c("123456789") == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
