/*
 * The one clock: CLOCK_MONOTONIC in milliseconds, for deadlines, budgets and ages. Wall-clock
 * time appears only in log lines (log.h).
 */
#ifndef WCACHED_CLOCK_H
#define WCACHED_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC. Any thread. */
int64_t wc_mono_ms(void);

#endif
