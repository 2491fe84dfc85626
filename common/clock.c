/* The one clock; see include/wcached/clock.h. */
#include <time.h>

#include "wcached/clock.h"

int64_t wc_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
