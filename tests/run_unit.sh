#!/usr/bin/env bash
# Runs unit-test executables, optionally under valgrind (leaks and memory
# errors fail the run), and closes with "N passed, N failed".
set -uo pipefail
vg=()
if [ "${1:-}" = "--valgrind" ]; then
    shift
    vg=(valgrind --quiet --error-exitcode=99 --leak-check=full
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
        --track-origins=yes)
    echo "== unit tests under valgrind"
else
    echo "== unit tests"
fi
pass=0
fail=0
for t in "$@"; do
    if "${vg[@]}" "$t" >"$t.out" 2>&1; then
        pass=$((pass + 1))
        echo "ok   $t"
    else
        fail=$((fail + 1))
        echo "FAIL $t (output follows)"
        cat "$t.out"
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
