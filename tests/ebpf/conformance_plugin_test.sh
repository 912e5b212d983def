#!/bin/bash
# Drives sluice_conformance_plugin over every .data file as the standard bpf_conformance runner does
# (PLUGIN.md): MEM_HEX as the first argument when the file has memory, then the runner's options (here an empty
# one, which the plugin must ignore, and --interpret), the program as hex on stdin; compares stdout with the
# expected r0 or error text. Prints "N passed, N failed" and fails unless all 313 files pass.
#
# usage: conformance_plugin_test.sh PLUGIN CONFORMANCE_HEX DATA_DIR [ENGINE_OPTION]   (default --interpret; --jit)
set -u
plugin=$1
to_hex=$2
folder=$3
expected_files=313

passed=0
failed=0
for file in "$folder"/*.data; do
    [ -e "$file" ] || continue
    name=$(basename "$file")
    if ! prepared=$("$to_hex" "$file"); then
        echo "FAIL $name: cannot prepare"
        failed=$((failed + 1))
        continue
    fi
    memory=$(sed -n 1p <<<"$prepared")
    program=$(sed -n 2p <<<"$prepared")
    expected=$(sed -n 3p <<<"$prepared")
    arguments=()
    if [ "$memory" != "-" ]; then
        arguments+=("$memory")
    fi
    arguments+=("" "${4:---interpret}")
    output=$(printf '%s\n' "$program" | "$plugin" "${arguments[@]}")
    status=$?
    case "$expected" in
    result\ *)
        want=${expected#result }
        if [ $status -eq 0 ] && [ "$output" = "$want" ]; then
            passed=$((passed + 1))
        else
            echo "FAIL $name: exit $status, output '$output', expected '$want'"
            failed=$((failed + 1))
        fi
        ;;
    error\ *)
        want=${expected#error }
        # The runner cuts at the first carriage return and strips trailing whitespace.
        got=$(printf '%s' "$output" | head -n 1 | tr -d '\r' | sed 's/[[:space:]]*$//')
        if [ $status -ne 0 ] && [ "$got" = "$want" ]; then
            passed=$((passed + 1))
        else
            echo "FAIL $name: exit $status, output '$got', expected error '$want'"
            failed=$((failed + 1))
        fi
        ;;
    esac
done

echo "$passed passed, $failed failed"
total=$((passed + failed))
if [ $total -ne $expected_files ]; then
    echo "expected $expected_files files in $folder, found $total"
    exit 1
fi
[ $failed -eq 0 ]
