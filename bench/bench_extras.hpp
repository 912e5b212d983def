// The columns bench/ adds to `sluice bench`: the native C twin of an example and DPDK's BPF JIT.
#pragma once

namespace sluice::bench {

/// Makes `sluice bench` add, after its standard variants, the native twin of the object (when the object is one of
/// examples/ and the program is the one its twin copies) and the DPDK column. The sluice command calls this once at
/// start when it is built with bench/.
void register_extra_variants();

} // namespace sluice::bench
