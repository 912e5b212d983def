// The loader: from a BPF ELF object, as clang and libbpf produce it, to programs ready to run and the maps they use.
//
// Loading has two steps, as in libbpf (bpf_object__open, then bpf_object__load):
//  - object_spec::open() reads an elf_object and does everything that depends only on the file: it finds the
//    programs by section name (`xdp`, `xdp.frags`, `xdp/devmap`, `xdp/cpumap`, `xdp.frags/devmap`,
//    `xdp.frags/cpumap`, legacy `xdp_*` and `xdp/...`), one per global function of the section; appends the
//    subprograms each one calls (transitively, from `.text` and from its own section) and fixes up the calls and
//    function addresses; parses the maps (BTF-defined in `.maps`, legacy `maps`, and global data sections as
//    single-entry arrays); turns map references into `lddw` with pseudo source map_idx (5) or map_idx_value (6), whose
//    imm is the map's index in maps(); and rewrites every read of `struct xdp_md` into a read of sluice's
//    xdp_context (xdp_context.hpp), after a data-flow analysis that knows, as the kernel's verifier does, which
//    registers hold the context. The spec can then be adjusted: `.rodata` variables (`const volatile` knobs) and
//    prog_array slots.
//  - object_spec::load() creates the maps through the maps module (maps.hpp), fills global data and prog arrays, and
//    lowers each program for execution: pseudo map loads become plain 64-bit immediates holding the map's address
//    (a `sluice::ebpf::map*`), or the address of the value byte for global data. The un-lowered code is kept beside
//    the executable code, for the verifier.
//
// Every error is a value naming what to blame: the file, section, program, map, instruction index and source line
// (BTF line info) as applicable, and what to change. Helper calls are not resolved here: the helpers module checks
// them (load_options::check_program is where it plugs in). Objects libbpf can load load here too, unchanged; what
// libbpf supports and sluice does not (map-in-map, externs and kfuncs, CO-RE relocations of kernel types) is refused
// with a message saying so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/elf_object.hpp"
#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

/// Where an XDP program may run, from its section name: the kernel's expected_attach_type.
enum class xdp_attach : std::uint8_t {
    device, ///< BPF_XDP: a device's receive hook (`xdp`, `xdp.frags`, legacy names)
    devmap, ///< BPF_XDP_DEVMAP: runs on redirect into a devmap entry; may read egress_ifindex
    cpumap, ///< BPF_XDP_CPUMAP: runs on the target cpu of a cpumap redirect
};

std::string_view to_string(xdp_attach attach);

/// What a section name says about the programs in it.
struct program_section {
    xdp_attach attach{xdp_attach::device};
    bool frags{}; ///< BPF_F_XDP_HAS_FRAGS: the program handles multi-buffer packets
};

/// libbpf's reading of an XDP section name; nullopt when the section holds no XDP program.
std::optional<program_section> classify_section(std::string_view section_name);

/// The fields of `struct xdp_md`, by their offset in it.
enum class xdp_md_field : std::uint8_t { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex };

std::string_view to_string(xdp_md_field field);

/// One instruction the context rewrite changed.
struct context_access {
    std::size_t instruction{};
    xdp_md_field field{};
};

/// A function inside a linked program: the program's own function at 0, then each appended subprogram.
struct program_function {
    std::string name;
    std::size_t first{}; ///< instruction index in the linked program
    std::size_t count{}; ///< instructions
};

/// A program as the object defines it, linked and relocated but not yet lowered.
struct program_spec {
    std::string name;    ///< its function symbol
    std::string section; ///< the ELF section it came from
    program_section kind;
    std::vector<instruction> code;           ///< pseudo map sources (5, 6), local calls and pseudo_func resolved
    std::vector<line_info> lines;            ///< `instruction` is an index into `code`
    std::vector<program_function> functions; ///< by first instruction
    std::vector<context_access> context_accesses;

    /// The source line an instruction came from (the closest line info at or before it), or nullptr.
    const line_info* line_at(std::size_t instruction) const;
};

/// Where a map definition came from.
enum class map_origin : std::uint8_t {
    btf,         ///< a variable in `.maps`
    legacy,      ///< a struct bpf_map_def in the `maps` section
    global_data, ///< `.data`, `.rodata`, `.bss`, `.data.*`, `.rodata.*`: one ARRAY entry holding the section
};

/// A prog_array slot to fill at load time with a program of the object.
struct prog_array_slot {
    std::uint32_t index{};
    std::string program;
};

/// A map as the object declares it.
struct map_spec {
    std::string name;        ///< variable name; for global data, the section name (".rodata"), as libbpf's
                             ///< bpf_object__find_map_by_name() accepts it
    std::string kernel_name; ///< the name the map gets (definition.name): libbpf's internal name for global
                             ///< data ("object.rodata"), truncated to 15 characters
    map_origin origin{map_origin::btf};
    std::string section;                  ///< the ELF section holding its definition or data
    map_definition definition;            ///< as the maps module creates it
    std::uint32_t key_type_id{};          ///< BTF type of the key (`__type(key, ...)`), 0 if unknown
    std::uint32_t value_type_id{};        ///< BTF type of the value, or the DATASEC of global data; 0 if unknown
    std::vector<std::byte> initial_value; ///< global data: the section's bytes (zeros for .bss); empty otherwise
    bool read_only{};                     ///< `.rodata*`: BPF_F_RDONLY_PROG, and frozen once filled
    std::vector<prog_array_slot> initial_programs; ///< prog_array: `.values = {[i] = &prog}` and set_prog_array_slot()
};

/// A variable of a `.rodata` section, found through BTF: what set_rodata() can change.
struct rodata_variable {
    std::string name;
    std::string section;
    std::size_t map_index{};
    std::uint32_t offset{};
    std::uint32_t size{};
};

struct load_options {
    unsigned cpus{1}; ///< per-CPU slots of per-CPU maps: one per sluice worker
    /// Called for each program after relocation and validate(), before maps are created: the helpers module (or an
    /// embedder) refuses helper calls it cannot serve here. Empty: no check.
    std::function<expected<void>(const program_spec&)> check_program;
};

/// A program ready to run.
struct loaded_program {
    std::string name;
    std::string section;
    program_section kind;
    std::vector<instruction> code;      ///< executable: map loads are plain imm64 addresses
    std::vector<instruction> relocated; ///< the same program before lowering (pseudo sources 5 and 6)
    std::vector<line_info> lines;       ///< by instruction index, valid for both
    std::vector<program_function> functions;
    std::vector<context_access> context_accesses;

    const line_info* line_at(std::size_t instruction) const;
};

/// The result of load(): programs and maps live as long as this object, at fixed addresses (the lowered code holds
/// map addresses, prog arrays hold `const loaded_program*` handles). Move-only.
class loaded_object {
public:
    loaded_object() = default;
    loaded_object(loaded_object&&) = default;
    loaded_object& operator=(loaded_object&&) = default;
    loaded_object(const loaded_object&) = delete;
    loaded_object& operator=(const loaded_object&) = delete;

    const std::vector<std::unique_ptr<loaded_program>>& programs() const { return _programs; }
    const loaded_program* find_program(std::string_view name) const;
    /// Maps in index order (the imm of pseudo_map_idx); specs()[i] describes maps()[i].
    const std::vector<std::unique_ptr<map>>& maps() const { return _maps; }
    const std::vector<map_spec>& map_specs() const { return _map_specs; }
    map* find_map(std::string_view name) const;
    std::optional<std::size_t> map_index(std::string_view name) const;
    const std::string& license() const { return _license; }
    /// Warnings: a missing license, ignored attributes (pinning), anything the object asked that sluice approximates.
    const std::vector<std::string>& notes() const { return _notes; }

private:
    std::vector<std::unique_ptr<loaded_program>> _programs;
    std::vector<std::unique_ptr<map>> _maps;
    std::vector<map_spec> _map_specs;
    std::string _license;
    std::vector<std::string> _notes;

    friend class object_spec;
};

/// An opened object: programs and maps as the file defines them, adjustable until load().
class object_spec {
public:
    /// Reads programs and maps and relocates the code. `elf` need not outlive the spec.
    static expected<object_spec> open(const elf_object& elf);
    /// elf_object::open() and open() in one step.
    static expected<object_spec> open_file(const std::string& path);

    const std::string& name() const { return _name; } ///< the object's name: file name without directory and `.o`
    const std::vector<program_spec>& programs() const { return _programs; }
    const program_spec* find_program(std::string_view name) const;
    const std::vector<map_spec>& maps() const { return _maps; }
    const map_spec* find_map(std::string_view name) const;
    std::optional<std::size_t> map_index(std::string_view name) const;
    const std::string& license() const { return _license; }
    const std::vector<std::string>& notes() const { return _notes; }

    /// Variables of `.rodata` and `.rodata.*` that set_rodata() can change.
    const std::vector<rodata_variable>& rodata_variables() const { return _rodata; }
    /// Replaces the initial value of a `.rodata` variable (a `const volatile` global); `value` must have its size.
    expected<void> set_rodata(std::string_view variable, std::span<const std::byte> value);
    /// The command-line form `NAME=VALUE`: VALUE is an integer (decimal, 0x hex, negative) that fits the variable's
    /// size (1, 2, 4 or 8 bytes), or true/false; stored little-endian.
    expected<void> set_rodata(std::string_view assignment);
    /// Puts program `program` of this object in slot `index` of prog_array `map` at load time.
    expected<void> set_prog_array_slot(std::string_view map, std::uint32_t index, std::string_view program);
    /// The command-line form `MAP[INDEX]=PROGRAM`.
    expected<void> set_prog_array_slot(std::string_view assignment);

    /// Creates the maps and lowers the programs. The spec is unchanged, so it can be loaded again.
    expected<loaded_object> load(const load_options& options = {}) const;

private:
    std::string _name;
    std::vector<program_spec> _programs;
    std::vector<map_spec> _maps;
    std::vector<rodata_variable> _rodata;
    std::string _license;
    std::vector<std::string> _notes;
};

/// Rewrites the reads of `struct xdp_md` in raw code into reads of sluice's xdp_context, as object_spec::open() does
/// for the programs of an object: for code written against the kernel's context that never came from an ELF object
/// (generated programs, hand-assembled tests, the same instructions given to the kernel's BPF_PROG_LOAD). The code is
/// one program, r1 = ctx at instruction 0; local calls are followed. Errors name the instruction the kernel would
/// refuse too.
expected<std::vector<instruction>> rewrite_context_accesses(std::span<const instruction> code,
                                                            xdp_attach attach = xdp_attach::device);

/// Lowers pseudo map loads for execution: pseudo_map_idx becomes the address of `maps[imm]`, pseudo_map_idx_value
/// the address of byte `next.imm` of the single value of array `maps[imm]`. Other instructions are copied.
expected<std::vector<instruction>> lower_map_references(std::span<const instruction> code, std::span<map* const> maps);

} // namespace sluice::ebpf
