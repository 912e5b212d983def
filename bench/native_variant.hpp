// The native C twin of an example as a `sluice bench` variant (native/native_twin.h): the no-VM limit.
#pragma once

#include "bench_command.hpp"
#include "native/native_twin.h"

namespace sluice::bench {

/// The twin of examples/<example>.c, or nullptr when there is none.
const native_twin* find_native_twin(std::string_view example);

/// The "native" column for `twin`: it copies the loaded object's .rodata knobs and --map entries into the twin's state,
/// runs it on a frame-like buffer and times it as the other variants are timed.
cli::variant_factory native_variant(const native_twin& twin);

} // namespace sluice::bench
