#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the DDoS filter example over generated traffic in which
# 30% of the packets come from an attack prefix, half of which is on the blocklist (examples/ddos_blocklist.json);
# the other attack sources are caught by the per-source rate limit. Prints the per-action table and the filter's
# per-CPU verdict counters (stats: passed, blocked prefix, rate limited, not IP, malformed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/src/cli/sluice run build/examples/ddos_filter.o \
    --in gen:packets=100000,flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=10,attack=30@203.0.113.0/24,seed=1 \
    --map blocked_v4=examples/ddos_blocklist.json \
    --dump-map stats
