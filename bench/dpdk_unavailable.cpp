// The DPDK column of a build without dpdk-dev: it says so instead of timing anything.
#include "dpdk_variant.hpp"

namespace sluice::bench {

cli::variant_factory dpdk_variant() {
    return {"DPDK", cli::variant_role::dpdk,
            [](const cli::bench_target&) -> expected<std::unique_ptr<cli::bench_variant>> {
                return error{"skipped DPDK: dpdk-dev not installed (librte_bpf not found by pkg-config when this "
                             "build was configured)"};
            }};
}

} // namespace sluice::bench
