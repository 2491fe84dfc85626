/*
 * The concurrency scenarios without Criterion, for ThreadSanitizer builds (Criterion's runner
 * cannot start under TSan). Prints one line per scenario and the closing "N passed, N failed".
 */
#include "concurrency_scenario.h"

int main(void)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(*scenarios); i++) {
        char msg[256];
        int bad = run(scenarios[i].consumers, scenarios[i].ring, scenarios[i].budget_ms, msg,
                      sizeof(msg));
        printf("%s concurrency::%s%s%s\n", bad ? "[FAIL]" : "[PASS]", scenarios[i].name,
               bad ? ": " : "", bad ? msg : "");
        if (bad)
            failed++;
        else
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
