// Helper names straight from <linux/bpf.h>'s own list (__BPF_FUNC_MAPPER), so the numbering cannot drift from the
// kernel's: the mapper lists helpers in id order, starting with `unspec` at 0.
#include "sluice/ebpf/kernel_helpers.hpp"

#include <linux/bpf.h>

#include <array>
#include <string>

namespace sluice::ebpf {
namespace {

#define SLUICE_HELPER_NAME(name) std::string_view{"bpf_" #name}
constexpr std::array kernel_helper_names{__BPF_FUNC_MAPPER(SLUICE_HELPER_NAME)};
#undef SLUICE_HELPER_NAME

static_assert(kernel_helper_names.size() == __BPF_FUNC_MAX_ID);
static_assert(kernel_helper_names[BPF_FUNC_map_lookup_elem] == "bpf_map_lookup_elem");
static_assert(kernel_helper_names[BPF_FUNC_xdp_adjust_head] == "bpf_xdp_adjust_head");

} // namespace

std::string_view kernel_helper_name(std::uint32_t id) {
    return id != 0 && id < kernel_helper_names.size() ? kernel_helper_names[id] : std::string_view{};
}

std::optional<std::uint32_t> kernel_helper_id(std::string_view name) {
    if (!name.starts_with("bpf_")) {
        return kernel_helper_id(std::string{"bpf_"}.append(name));
    }
    for (std::uint32_t id = 1; id < kernel_helper_names.size(); ++id) {
        if (kernel_helper_names[id] == name) {
            return id;
        }
    }
    return std::nullopt;
}

std::uint32_t kernel_helper_count() { return static_cast<std::uint32_t>(kernel_helper_names.size()); }

} // namespace sluice::ebpf
