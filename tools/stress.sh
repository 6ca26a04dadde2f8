#!/usr/bin/env bash
# `make stress`: runs a test command STRESS_RUNS times (default 3) in a row while `stress-ng --cpu
# STRESS_CPUS` (default 2) keeps the cores busy in the background, as on a loaded CI machine, and says
# which runs passed. The suite must pass every time: a test that needs a quiet machine is a broken test.
# stress-ng is stopped when this script ends, however it ends; its own --timeout is a backstop for a
# script killed with SIGKILL.
# Usage: tools/stress.sh COMMAND [ARGS...]   (make stress runs .venv/bin/pytest $(STRESS_ARGS))
set -uo pipefail

runs=${STRESS_RUNS:-3}
cpus=${STRESS_CPUS:-2}
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
command -v stress-ng >/dev/null || { echo "stress-ng is not installed: run tools/os-packages.sh" >&2; exit 2; }

stress-ng --cpu "$cpus" --timeout "$((runs * 3600))s" --quiet &
load=$!
stop_load() {
    kill -TERM "$load" 2>/dev/null
    wait "$load" 2>/dev/null
}
trap stop_load EXIT
trap 'exit 130' INT TERM

verdicts=()
failed=0
for run in $(seq 1 "$runs"); do
    started=$SECONDS
    if "$@"; then
        verdict=pass
    else
        verdict="FAIL (exit $?)"
        failed=$((failed + 1))
    fi
    verdicts+=("run $run/$runs: $verdict in $((SECONDS - started)) s")
    echo "stress ${verdicts[-1]} (stress-ng --cpu $cpus in the background)"
done
echo "stress: $((runs - failed)) of $runs runs passed with stress-ng --cpu $cpus in the background"
printf '  %s\n' "${verdicts[@]}"
[ "$failed" -eq 0 ]
