#!/bin/sh
# Runs wcached (its path and arguments are this script's) under valgrind's memcheck: any error,
# or a block definitely lost at exit, is reported, and ends the daemon with status 99. With
# WCACHED_VALGRIND_LOGS set, each run's report goes to a file of its own in that folder (empty
# when there is nothing to say). Used by `tests/run.sh valgrind`.
log=
if [ -n "${WCACHED_VALGRIND_LOGS:-}" ]; then
    log="--log-file=$WCACHED_VALGRIND_LOGS/vg.%p.log"
fi
exec valgrind --quiet $log --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite "$@"
