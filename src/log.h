/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Logging: structured journal entries when the journal is our stderr or we run
 * under systemd, plain "hami-dra-plugin: message" lines on stderr otherwise.
 *
 *   log_info("Registered with the kubelet");
 *   return log_error_errno(r, "Failed to bind %s: %m", path);   -> returns r (negative)
 *   log_struct(LOG_INFO, "MESSAGE_ID=" SD_ID128_FORMAT_STR, ..., "CLAIM_UID=%s", uid, NULL);
 *
 * %m in a *_errno() call prints strerror(-r), as in systemd.
 */

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,    /* journal when JOURNAL_STREAM names our stderr, console otherwise */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
} LogTarget;

void log_set_target(LogTarget target);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_parse_level(const char *s); /* "debug", "info", ... or 0..7; -EINVAL otherwise */
void log_set_ident(const char *ident);

/* Returns -abs(error) (or 0 when error is 0), so callers can "return log_...errno()". */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

/*
 * A journal entry with extra fields. Each argument is one complete "FIELD=value"
 * string, NULL-terminated; LOG_MESSAGE() and LOG_FIELD() format them into buffers that
 * live until the end of the enclosing block:
 *
 *   log_struct(LOG_INFO,
 *              LOG_MESSAGE_ID(HAMI_MESSAGE_CLAIM_PREPARED),
 *              LOG_MESSAGE("Prepared claim %s/%s", ns, name),
 *              LOG_FIELD("CLAIM_UID=%s", uid),
 *              NULL);
 *
 * On the console only the MESSAGE= field is printed.
 */
int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *field, ...) _sentinel_;

const char *log_format_field(char *buf, size_t size, const char *format, ...) _printf_(3, 4);

#define LOG_FIELD(...) log_format_field((char[1024]){}, 1024, __VA_ARGS__)
#define LOG_MESSAGE(fmt, ...) log_format_field((char[2048]){}, 2048, "MESSAGE=" fmt, ##__VA_ARGS__)
#define LOG_MESSAGE_ID(id) ("MESSAGE_ID=" id)

#define log_full_errno(level, error, ...)                                                       \
        ({                                                                                      \
                int _l_ = (level), _e_ = (error);                                               \
                (log_get_max_level() >= _l_)                                                    \
                        ? log_internal(_l_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__)     \
                        : -abs(_e_);                                                            \
        })
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* Like log_full_errno(): the fields are not even formatted below the level. */
#define log_struct_errno(level, error, ...)                                                     \
        ({                                                                                      \
                int _l_ = (level), _e_ = (error);                                               \
                (log_get_max_level() >= _l_)                                                    \
                        ? log_struct_internal(_l_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                            \
        })
#define log_struct(level, ...) log_struct_errno(level, 0, __VA_ARGS__)

/* "Out of memory." logged once per call site, returns -ENOMEM. */
#define log_oom() log_full_errno(LOG_ERR, ENOMEM, "Out of memory.")
