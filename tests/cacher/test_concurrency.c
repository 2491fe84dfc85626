/* The concurrency scenarios (concurrency_scenario.h) under Criterion. */
#include <criterion/criterion.h>
#include <inttypes.h>

#include "concurrency_scenario.h"

static run_stats run_scenario(int i)
{
    char msg[256];
    run_stats st;
    int bad = run(scenarios[i].consumers, scenarios[i].ring, scenarios[i].budget_ms,
                  scenarios[i].stallers, &st, msg, sizeof(msg));
    cr_assert_eq(bad, 0, "%d consumers saw a wrong stream; first: %s", bad, msg);
    cr_assert_gt(st.checked, 0, "no consumer checked any event");
    return st;
}

Test(concurrency, every_consumer_sees_exactly_the_history_after_its_start, .timeout = 240)
{
    run_scenario(0);
}

Test(concurrency, tiny_budget_forces_reconnects_that_lose_nothing, .timeout = 240)
{
    run_stats st = run_scenario(1);
    int stallers = scenarios[1].stallers;
    cr_assert_gt(stallers, 0);
    cr_assert_eq(st.stallers_resumed, stallers, "%d of %d stallers were ended and resumed",
                 st.stallers_resumed, stallers);
    cr_assert_geq(st.reconnects, stallers, "only %d reconnects", st.reconnects);
    cr_assert_geq(st.ended_slow, (uint64_t)st.reconnects,
                  "%d resumes, but the cacher ended only %" PRIu64 " watchers as slow",
                  st.reconnects, st.ended_slow);
}

Test(concurrency, many_watchers_registering_concurrently, .timeout = 240)
{
    run_scenario(2);
}
