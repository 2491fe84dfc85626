/*
 * One line per notable event, on stderr: "2026-11-24T12:00:00.123Z info upstream: connected".
 * The level is set once at start-up; messages below it cost one comparison. This is the only
 * place that writes to stderr; modules below the edge return codes, and the daemon (or a module
 * at its edge, such as a watcher ended by the server) logs.
 */
#ifndef WCACHED_LOG_H
#define WCACHED_LOG_H

typedef enum wc_log_level {
    WC_LOG_ERROR = 0,
    WC_LOG_WARN,
    WC_LOG_INFO,
    WC_LOG_DEBUG,
} wc_log_level;

typedef enum wc_log_format {
    WC_LOG_TEXT = 0, /* 2026-11-24T12:00:00.123Z info upstream: connected */
    WC_LOG_JSON,     /* {"ts":"2026-11-24T12:00:00.123Z","level":"info","msg":"upstream: ..."} */
} wc_log_format;

/* Parses "text|json"; returns the format or -1. */
int wc_log_parse_format(const char *s);
void wc_log_set_format(wc_log_format format);

/* Parses "error|warn|info|debug"; returns the level or -1. */
int wc_log_parse_level(const char *s);
void wc_log_set_level(wc_log_level level);
int wc_log_enabled(wc_log_level level);
void wc_log(wc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
