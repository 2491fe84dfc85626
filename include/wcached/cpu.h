/*
 * How many cores the process may use: what the default thread counts are sized by.
 */
#ifndef WCACHED_CPU_H
#define WCACHED_CPU_H

/*
 * The CPUs in the process's affinity mask, bounded by its cgroup v2 CPU quota (cpu.max,
 * rounded up) when one is set, as a container's CPU limit is; at least 1. `cgroup_root` is
 * where the process's cgroup files are (NULL: /sys/fs/cgroup). Any thread.
 */
unsigned wc_cpu_count(const char *cgroup_root);

#endif
