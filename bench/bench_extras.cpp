// `sluice bench`'s native and DPDK columns, from bench/.
#include "bench_extras.hpp"

#include <filesystem>

#include "bench_command.hpp"
#include "dpdk_variant.hpp"
#include "native_variant.hpp"

namespace sluice::bench {

void register_extra_variants() {
    cli::set_extra_variants([](const cli::bench_target& target) {
        std::vector<cli::variant_factory> extra;
        const std::string example = std::filesystem::path(target.file).stem().string();
        if (const native_twin* twin = find_native_twin(example); twin != nullptr) {
            extra.push_back(native_variant(*twin));
        } else {
            extra.push_back({"native", cli::variant_role::native,
                             [example](const cli::bench_target&) -> expected<std::unique_ptr<cli::bench_variant>> {
                                 return error{"no native twin: bench/native/ has C twins of the examples only (" +
                                              example + " is not one)"};
                             }});
        }
        extra.push_back(dpdk_variant());
        return extra;
    });
}

} // namespace sluice::bench
