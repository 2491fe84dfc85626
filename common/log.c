/* The logger (see include/wcached/log.h). Each line is written with one fprintf, which stdio
 * makes atomic with respect to other threads' lines. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wcached/buf.h"
#include "wcached/log.h"

static atomic_int log_level = WC_LOG_INFO;
static atomic_int log_format = WC_LOG_TEXT;
static const char *const names[] = {"error", "warn", "info", "debug"};

int wc_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void wc_log_set_level(wc_log_level level)
{
    atomic_store(&log_level, (int)level);
}

int wc_log_parse_format(const char *s)
{
    if (s && strcmp(s, "text") == 0)
        return WC_LOG_TEXT;
    if (s && strcmp(s, "json") == 0)
        return WC_LOG_JSON;
    return -1;
}

void wc_log_set_format(wc_log_format format)
{
    atomic_store(&log_format, (int)format);
}

int wc_log_enabled(wc_log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

void wc_log(wc_log_level level, const char *fmt, ...)
{
    if (!wc_log_enabled(level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (atomic_load(&log_format) == WC_LOG_TEXT) {
        fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000, names[level], msg);
        return;
    }
    /* One JSON object per line: {"ts":...,"level":...,"msg":...}. */
    wc_buf b = {0};
    wc_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":", when, ts.tv_nsec / 1000000,
                  names[level]);
    wc_buf_json(&b, msg, strlen(msg));
    wc_buf_puts(&b, "}\n");
    if (!b.oom)
        fputs(b.p, stderr);
    wc_buf_free(&b);
}
