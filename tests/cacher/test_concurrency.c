/* The concurrency scenarios (concurrency_scenario.h) under Criterion. */
#include <criterion/criterion.h>

#include "concurrency_scenario.h"

static void run_scenario(int i)
{
    char msg[256];
    int bad =
        run(scenarios[i].consumers, scenarios[i].ring, scenarios[i].budget_ms, msg, sizeof(msg));
    cr_assert_eq(bad, 0, "%d consumers saw a wrong stream; first: %s", bad, msg);
}

Test(concurrency, every_consumer_sees_exactly_the_history_after_its_start, .timeout = 240)
{
    run_scenario(0);
}

Test(concurrency, tiny_budget_forces_reconnects_that_lose_nothing, .timeout = 240)
{
    run_scenario(1);
}

Test(concurrency, many_watchers_registering_concurrently, .timeout = 240)
{
    run_scenario(2);
}
