/*
 * The cores the process may use (cpu.h). A container limited to half a core on a 64-core node
 * sees 64 CPUs in its affinity mask; its quota, not the mask, says what its threads can get.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "wcached/cpu.h"

/* The quota of cgroup v2's cpu.max ("QUOTA PERIOD" or "max PERIOD") in whole cores, rounded
 * up; 0 when there is none or it cannot be read. */
static unsigned quota_cores(const char *root)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cpu.max", root ? root : "/sys/fs/cgroup");
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char quota[32] = "";
    unsigned long long period = 0;
    int got = fscanf(f, "%31s %llu", quota, &period);
    fclose(f);
    if (got != 2 || period == 0 || strcmp(quota, "max") == 0)
        return 0;
    unsigned long long q = 0;
    if (sscanf(quota, "%llu", &q) != 1 || q == 0)
        return 0;
    unsigned long long cores = (q + period - 1) / period;
    return cores > 4096 ? 4096u : (unsigned)cores;
}

unsigned wc_cpu_count(const char *cgroup_root)
{
    unsigned n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        n = (unsigned)CPU_COUNT(&set);
    unsigned q = quota_cores(cgroup_root);
    if (q > 0 && q < n)
        n = q;
    return n;
}
