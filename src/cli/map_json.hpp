// Map contents as files and text: `sluice run --map NAME=FILE.json` fills a map before a run, `--dump-maps` prints
// every map after it.
//
// The file format (the same as the "entries" of a `--dump-maps --json` map, so a dump can be fed back in):
//
//   [
//     {"key": "0a000001", "value": "01000000"},                 hex string: the bytes in order (spaces allowed,
//                                                                 optional 0x prefix)
//     {"key": [24, 0, 0, 0, 198, 51, 100, 0], "value": 1},      array of byte values 0..255
//     {"key": 7, "value": 1000},                                integer: only for 4- or 8-byte keys and values,
//                                                                 stored in the host's (little-endian) order, as a
//                                                                 program's __u32 / __u64 reads it
//     {"key": 1, "values": [5, 6]}                              per-CPU maps: one value per CPU ("value" alone puts
//                                                                 the same value in every CPU's slot)
//   ]
//
// Each key and value must have exactly the map's key_size / value_size bytes. Queue and stack maps (no key) take
// entries without "key". Entries are written in order with BPF_ANY, as `bpftool map update` does; errors name the
// map, the entry (1-based) and what is wrong with it, including the kernel's errno when the map refuses the update.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sluice/ebpf/maps.hpp"
#include "sluice/expected.hpp"

namespace sluice::cli {

/// Reads `path` and writes its entries into `target` (named `name` in messages). Returns the entries written.
expected<std::size_t> fill_map_from_file(ebpf::map& target, std::string_view name, const std::string& path);

/// The same from parsed JSON (for tests and embedders).
expected<std::size_t> fill_map(ebpf::map& target, std::string_view name, const nlohmann::json& entries);

/// One map as JSON: {"name", "type", "key_size", "value_size", "max_entries", "entries": [...]} with hex keys and
/// values ("values" per CPU for per-CPU maps); "error" instead of entries when the map cannot be read (ringbuf,
/// write-only).
nlohmann::json dump_map_json(std::string_view name, ebpf::map& source);

/// One map as text, bpftool-like: a header line, then one line per entry with hex bytes ("value (CPU 0): ...").
std::string dump_map_text(std::string_view name, ebpf::map& source);

} // namespace sluice::cli
