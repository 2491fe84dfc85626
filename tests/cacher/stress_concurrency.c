/*
 * The concurrency scenarios without Criterion, for ThreadSanitizer builds (Criterion's runner
 * cannot start under TSan). Prints one line per scenario and the closing "N passed, N failed".
 */
#include <inttypes.h>

#include "concurrency_scenario.h"

int main(void)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(*scenarios); i++) {
        char msg[256];
        run_stats st;
        int bad = run(scenarios[i].consumers, scenarios[i].ring, scenarios[i].budget_ms,
                      scenarios[i].stallers, &st, msg, sizeof(msg));
        /* The same checks as test_concurrency.c. */
        if (!bad && st.checked == 0) {
            bad = 1;
            snprintf(msg, sizeof(msg), "no consumer checked any event");
        }
        if (!bad &&
            (st.stallers_resumed != scenarios[i].stallers ||
             st.reconnects < scenarios[i].stallers || st.ended_slow < (uint64_t)st.reconnects)) {
            bad = 1;
            snprintf(msg, sizeof(msg),
                     "%d of %d stallers resumed; %d reconnects; %" PRIu64 " ended as slow",
                     st.stallers_resumed, scenarios[i].stallers, st.reconnects, st.ended_slow);
        }
        printf("%s concurrency::%s (%d events checked, %d reconnects)%s%s\n",
               bad ? "[FAIL]" : "[PASS]", scenarios[i].name, st.checked, st.reconnects,
               bad ? ": " : "", bad ? msg : "");
        if (bad)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
