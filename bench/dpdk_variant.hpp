// DPDK's BPF JIT (librte_bpf: rte_bpf_load + rte_bpf_get_jit) as a bench variant, when this build found dpdk-dev;
// otherwise the column says it was skipped and why.
#pragma once

#include "bench_command.hpp"

namespace sluice::bench {

cli::variant_factory dpdk_variant();

} // namespace sluice::bench
