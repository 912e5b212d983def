// The kernel's helper functions by id, as <linux/bpf.h> numbers them.
//
// sluice implements a subset of them; this table names all the others too, so that a program calling a helper
// sluice lacks is refused with the helper's name ("bpf_skb_load_bytes (id 26)") rather than a bare number.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::ebpf {

/// "bpf_map_lookup_elem" for 1; empty for an id the kernel headers sluice was built with do not know.
std::string_view kernel_helper_name(std::uint32_t id);

/// The id of "bpf_map_lookup_elem" or "map_lookup_elem"; nullopt for an unknown name.
std::optional<std::uint32_t> kernel_helper_id(std::string_view name);

/// Number of helper ids the kernel headers define (the first unused id).
std::uint32_t kernel_helper_count();

} // namespace sluice::ebpf
