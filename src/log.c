/* SPDX-License-Identifier: Apache-2.0 */

#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_FIELDS_MAX 64

static LogTarget log_target = LOG_TARGET_AUTO;
static int log_max_level = LOG_INFO;
static const char *log_ident = "hami-dra";
static int log_journal_cached = -1; /* -1: not decided yet */

void log_set_target(LogTarget target) {
        log_target = target;
        log_journal_cached = -1;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_ident(const char *ident) {
        log_ident = ident;
}

int log_parse_level(const char *s) {
        static const char *const names[] = {
                "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        };

        if (isempty(s))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

/* Is our stderr the journal? systemd sets JOURNAL_STREAM=<dev>:<ino> for services. */
static bool stderr_is_journal(void) {
        const char *e = secure_getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

static bool log_use_journal(void) {
        switch (log_target) {
        case LOG_TARGET_JOURNAL:
                return true;
        case LOG_TARGET_CONSOLE:
                return false;
        default:
                if (log_journal_cached < 0)
                        log_journal_cached = stderr_is_journal();
                return log_journal_cached;
        }
}

static void log_console(int level, const char *message) {
        static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;

        /* One fprintf per line, serialised, so lines of concurrent threads don't interleave. */
        pthread_mutex_lock(&mutex);
        if (level <= LOG_WARNING)
                fprintf(stderr, "%s: %s%s\n", log_ident, level <= LOG_ERR ? "error: " : "warning: ",
                        message);
        else
                fprintf(stderr, "%s: %s\n", log_ident, message);
        pthread_mutex_unlock(&mutex);
}

const char *log_format_field(char *buf, size_t size, const char *format, ...) {
        va_list ap;
        int saved = errno;

        va_start(ap, format);
        (void) vsnprintf(buf, size, format, ap);
        va_end(ap);
        errno = saved;
        return buf;
}

static int log_emit(int level, int error, const char *file, int line, const char *func,
                    const char *message, const char *const *fields, size_t n_fields) {
        if (!log_use_journal()) {
                log_console(level, message);
                return -abs(error);
        }

        char priority[32], code_file[512], code_line[32], code_func[256], errno_field[32];
        struct iovec iov[LOG_FIELDS_MAX + 8];
        size_t n = 0;
        _cleanup_free_ char *msg = NULL;

        if (asprintf(&msg, "MESSAGE=%s", message) < 0) {
                log_console(level, message);
                return -abs(error);
        }
        snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
        snprintf(code_file, sizeof(code_file), "CODE_FILE=%s", file);
        snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
        snprintf(code_func, sizeof(code_func), "CODE_FUNC=%s", func);

        iov[n++] = (struct iovec) { msg, strlen(msg) };
        iov[n++] = (struct iovec) { priority, strlen(priority) };
        iov[n++] = (struct iovec) { code_file, strlen(code_file) };
        iov[n++] = (struct iovec) { code_line, strlen(code_line) };
        iov[n++] = (struct iovec) { code_func, strlen(code_func) };
        iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=hami-dra-plugin",
                                    strlen("SYSLOG_IDENTIFIER=hami-dra-plugin") };
        if (error != 0) {
                snprintf(errno_field, sizeof(errno_field), "ERRNO=%d", abs(error));
                iov[n++] = (struct iovec) { errno_field, strlen(errno_field) };
        }
        for (size_t i = 0; i < n_fields && n < ELEMENTSOF(iov); i++)
                iov[n++] = (struct iovec) { (char *) fields[i], strlen(fields[i]) };

        if (sd_journal_sendv(iov, (int) n) < 0)
                log_console(level, message);
        return -abs(error);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        char buf[4096];
        va_list ap;

        if (level > log_max_level)
                return -abs(error);

        errno = abs(error); /* for %m */
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        return log_emit(level, error, file, line, func, buf, NULL, 0);
}

int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *field, ...) {
        const char *fields[LOG_FIELDS_MAX];
        const char *message = "";
        size_t n = 0;
        va_list ap;

        if (level > log_max_level)
                return -abs(error);

        va_start(ap, field);
        for (const char *f = field; f; f = va_arg(ap, const char *)) {
                if (strncmp(f, "MESSAGE=", 8) == 0)
                        message = f + 8;
                else if (n < ELEMENTSOF(fields))
                        fields[n++] = f;
        }
        va_end(ap);

        return log_emit(level, error, file, line, func, message, fields, n);
}
