// The kernel as oracle (oracle.hpp).
#include "oracle.hpp"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

#include "sluice/ebpf/disassembler.hpp"

namespace sluice::oracle {
namespace {

using bytes = std::vector<std::uint8_t>;

/// libbpf's messages while an object loads (the verifier log among them), for errors.
std::mutex libbpf_log_mutex;
std::string libbpf_log;

int capture_libbpf(enum libbpf_print_level level, const char* format, va_list arguments) {
    if (level == LIBBPF_DEBUG) {
        return 0;
    }
    char line[4096];
    const int written = std::vsnprintf(line, sizeof line, format, arguments);
    const std::lock_guard lock(libbpf_log_mutex);
    libbpf_log += line;
    return written;
}

std::string tail(const std::string& text, std::size_t length = 4000) {
    return text.size() > length ? "..." + text.substr(text.size() - length) : text;
}

std::string errno_text(int negative) {
    return fmt::format("{} ({})", std::strerror(-negative), -negative);
}

bool is_percpu(ebpf::map_type type) {
    return type == ebpf::map_type::percpu_array || type == ebpf::map_type::percpu_hash ||
           type == ebpf::map_type::lru_percpu_hash;
}

std::size_t syscall_value_size(const ebpf::map_definition& definition) {
    return is_percpu(definition.type) ? ((definition.value_size + 7) & ~std::size_t{7}) * possible_cpus()
                                      : definition.value_size;
}

std::string hex(std::span<const std::uint8_t> data) {
    std::string text;
    for (const std::uint8_t byte : data) {
        text += fmt::format("{}{:02x}", text.empty() ? "" : " ", byte);
    }
    return text.empty() ? "(empty)" : text;
}

/// What differs between two byte strings, in words and hex.
std::string byte_difference(std::string_view what, const bytes& kernel, const bytes& sluice) {
    if (kernel == sluice) {
        return {};
    }
    std::size_t first = 0;
    while (first < kernel.size() && first < sluice.size() && kernel[first] == sluice[first]) {
        ++first;
    }
    return fmt::format("  {} differs: kernel {} bytes, sluice {} bytes, first difference at byte {}\n"
                       "  kernel:\n{}  sluice:\n{}",
                       what, kernel.size(), sluice.size(), first, hex_dump(kernel, 4, first > 64 ? first - 64 : 0),
                       hex_dump(sluice, 4, first > 64 ? first - 64 : 0));
}

/// Keys as strings: GCC 12 warns wrongly (stringop-overread) about comparing vectors of bytes in a std::map.
using contents = std::map<std::string, bytes>;

std::string as_key(const bytes& key) {
    return {key.begin(), key.end()};
}
std::string hex(const std::string& key) {
    return hex(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(key.data()), key.size()));
}

/// The part of a value the comparison looks at (map_pair::value_bytes).
bytes compared(const map_pair& pair, const bytes& value) {
    if (!pair.value_bytes) {
        return value;
    }
    const std::size_t first = std::min(pair.value_bytes->first, value.size());
    const std::size_t last = std::min(first + pair.value_bytes->second, value.size());
    return {value.begin() + static_cast<std::ptrdiff_t>(first), value.begin() + static_cast<std::ptrdiff_t>(last)};
}

std::string contents_difference(const map_pair& pair, const contents& kernel, const contents& sluice) {
    std::string text;
    const bool keys_only = pair.compare == map_pair::comparison::keys_only;
    for (const auto& [key, value] : kernel) {
        const auto found = sluice.find(key);
        if (found == sluice.end()) {
            text += fmt::format("    key {}: only in the kernel (value {})\n", hex(key), hex(value));
        } else if (!keys_only && compared(pair, found->second) != compared(pair, value)) {
            text += fmt::format("    key {}: kernel {}\n    {:{}}  sluice {}\n", hex(key), hex(value), "",
                                hex(key).size(), hex(found->second));
        }
    }
    for (const auto& [key, value] : sluice) {
        if (!kernel.contains(key)) {
            text += fmt::format("    key {}: only in sluice (value {})\n", hex(key), hex(value));
        }
    }
    return text;
}

} // namespace

std::vector<std::pair<std::uint32_t, std::uint32_t>> interface_mtus() {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> mtus;
    std::error_code failed;
    for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", failed)) {
        std::ifstream index_file(entry.path() / "ifindex");
        std::ifstream mtu_file(entry.path() / "mtu");
        std::uint32_t index = 0;
        std::uint32_t mtu = 0;
        if (index_file >> index && mtu_file >> mtu) {
            mtus.emplace_back(index, mtu);
        }
    }
    return mtus;
}

unsigned possible_cpus() {
    return std::max(1U, ebpf::testing::kernel_cpus());
}

std::string kernel_unavailable() {
    static const std::string reason = [] {
        const ebpf::instruction pass[] = {ebpf::make_instruction(0xb7, 0, 0, 0, 2), ebpf::make_instruction(0x95)};
        const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "oracle_probe", "GPL", reinterpret_cast<const bpf_insn*>(pass),
                                     2, nullptr);
        if (fd < 0) {
            return fmt::format("the kernel refused BPF_PROG_LOAD: {}; the oracle needs root (CAP_BPF, CAP_NET_ADMIN) "
                               "on a kernel with BPF",
                               errno_text(fd));
        }
        bytes packet(64, 0);
        bytes out(4096);
        xdp_md context{};
        context.data_end = static_cast<__u32>(packet.size());
        context.ingress_ifindex = loopback_ifindex;
        LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(), .data_out = out.data(),
                    .data_size_in = static_cast<__u32>(packet.size()), .data_size_out = static_cast<__u32>(out.size()),
                    .ctx_in = &context, .ctx_size_in = sizeof context, .repeat = 1);
        const int run = bpf_prog_test_run_opts(fd, &options);
        close(fd);
        if (run != 0 || options.retval != 2) {
            return fmt::format("BPF_PROG_TEST_RUN on an XDP program failed: {} (retval {}); the oracle needs it",
                               errno_text(run), options.retval);
        }
        return std::string();
    }();
    return reason;
}

struct oracle_pair::kernel_side {
    bpf_object* object{};
    int program_fd{-1};
    std::vector<int> own_fds; ///< generated programs: the maps and the program

    ~kernel_side() {
        for (const int fd : own_fds) {
            close(fd);
        }
        if (object != nullptr) {
            bpf_object__close(object);
        }
    }
};

oracle_pair::oracle_pair()
    // The kernel's per-cpu choices happen on the cpu the syscall runs on; sluice's worker 0 stands for cpu 0.
    : _pinned(std::make_unique<ebpf::testing::pin_to_cpu0>()), _kernel(std::make_unique<kernel_side>()) {
    _state.cpu = 0;
    // bpf_check_mtu reads the devices of the test's network namespace: sluice is told their MTUs, and that no other
    // interface exists (-ENODEV), as the kernel knows.
    _state.mtus = interface_mtus();
    _state.default_mtu = 0;
}

oracle_pair::~oracle_pair() {
    for (map_pair& pair : _maps) {
        if (pair.kernel_ring != nullptr) {
            ring_buffer__free(pair.kernel_ring);
        }
    }
    _kernel.reset();
}

std::string_view to_string(sluice_engine engine) {
    return engine == sluice_engine::jit ? "jit" : "interpreter";
}

expected<void> oracle_pair::prepare_sluice(std::span<const ebpf::instruction> code, sluice_engine engine) {
    _code = code;
    _state.programs = &_registry;
    if (engine == sluice_engine::jit) {
        auto compiled = ebpf::jit_program::compile(code, ebpf::xdp_helper_table());
        if (!compiled) {
            return error{"sluice's JIT refused the program: " + compiled.error().message};
        }
        _compiled.push_back(std::move(compiled.value()));
        if (_loaded) {
            // Tail-call targets: every other program of the object, compiled too.
            for (const auto& candidate : _loaded->programs()) {
                if (candidate->code.data() == code.data()) {
                    continue;
                }
                auto target = ebpf::jit_program::compile(candidate->code, ebpf::xdp_helper_table());
                if (!target) {
                    return error{
                        fmt::format("sluice's JIT refused program '{}': {}", candidate->name, target.error().message)};
                }
                _compiled.push_back(std::move(target.value()));
            }
        }
        _jit.emplace(_compiled.front());
        for (std::size_t i = 1; i < _compiled.size(); ++i) {
            _jit->add_tail_call_target(_compiled[i]);
        }
        return {};
    }
    // Checked mode: a sluice bug shows as a fault naming the instruction rather than as a crash of the test. The
    // instruction limit stops a runaway loop; a program with may_goto is bounded by its 250 ms budget instead, in
    // which a loop bounded only by can_loop runs more instructions than any limit that keeps other runs short.
    const bool has_may_goto = std::any_of(code.begin(), code.end(), [](const ebpf::instruction& instruction) {
        return instruction.opcode == ebpf::op::may_goto; // an lddw's second half has opcode 0: never a false match
    });
    auto machine = ebpf::interpreter::create(
        code, ebpf::xdp_helper_table(),
        {.checked = true, .instruction_limit = has_may_goto ? std::uint64_t{0} : std::uint64_t{100'000'000}});
    if (!machine) {
        return error{"sluice refused the program: " + machine.error().message};
    }
    _machine.emplace(std::move(machine.value()));
    _memory.attach(*_machine);
    if (_loaded) {
        _memory.register_maps(*_loaded);
    }
    return {};
}

expected<std::unique_ptr<oracle_pair>> oracle_pair::from_object(const std::string& path, const std::string& program,
                                                                const object_options& options) {
    std::unique_ptr<oracle_pair> pair(new oracle_pair());
    auto spec = ebpf::object_spec::open_file(path);
    if (!spec) {
        return error{"sluice cannot open " + path + ": " + spec.error().message};
    }
    {
        const std::lock_guard lock(libbpf_log_mutex);
        libbpf_log.clear();
    }
    libbpf_set_print(capture_libbpf);
    bpf_object* object = bpf_object__open_file(path.c_str(), nullptr);
    if (object == nullptr) {
        return error{fmt::format("the kernel side (libbpf) cannot open {}: {}", path, errno_text(-errno))};
    }
    pair->_kernel->object = object;
    // .rodata knobs: set in sluice's spec, then the same bytes into libbpf's copy of the section before loading.
    for (const std::string& assignment : options.rodata) {
        if (auto set = spec->set_rodata(assignment); !set) {
            return error{"sluice refused " + assignment + ": " + set.error().message};
        }
        const std::string name = assignment.substr(0, assignment.find('='));
        const auto& variables = spec->rodata_variables();
        const auto variable = std::find_if(variables.begin(), variables.end(),
                                           [&name](const ebpf::rodata_variable& v) { return v.name == name; });
        bpf_map* section =
            variable == variables.end() ? nullptr : bpf_object__find_map_by_name(object, variable->section.c_str());
        std::size_t size = 0;
        const auto* data =
            section == nullptr ? nullptr : static_cast<const std::uint8_t*>(bpf_map__initial_value(section, &size));
        if (data == nullptr || variable->offset + variable->size > size) {
            return error{fmt::format("libbpf has no section data for {}", assignment)};
        }
        bytes changed(data, data + size);
        const std::vector<std::byte>& wanted = spec->maps()[variable->map_index].initial_value;
        std::memcpy(changed.data() + variable->offset, wanted.data() + variable->offset, variable->size);
        if (const int set = bpf_map__set_initial_value(section, changed.data(), changed.size()); set != 0) {
            return error{fmt::format("libbpf refused {}: {}", assignment, errno_text(set))};
        }
    }
    // Legacy `xdp_*` section names, which libbpf 1.x no longer reads as XDP (sluice does): typed by hand, as older
    // libbpf did.
    bpf_program* each = nullptr;
    bpf_object__for_each_program(each, object) {
        if (bpf_program__type(each) == BPF_PROG_TYPE_UNSPEC &&
            std::string_view(bpf_program__section_name(each)).starts_with("xdp")) {
            bpf_program__set_type(each, BPF_PROG_TYPE_XDP);
            bpf_program__set_expected_attach_type(each, BPF_XDP);
        }
    }
    // Pinning needs a mounted bpffs and outlives the test; sluice ignores it too (with a note).
    bpf_map* pinned = nullptr;
    bpf_object__for_each_map(pinned, object) {
        if (bpf_map__pin_path(pinned) != nullptr) {
            bpf_map__set_pin_path(pinned, nullptr);
        }
    }
    if (const int loaded = bpf_object__load(object); loaded != 0) {
        const std::lock_guard lock(libbpf_log_mutex);
        return error{fmt::format("the kernel refused {}: {}\n{}", path, errno_text(loaded), tail(libbpf_log))};
    }
    bpf_program* kernel_program = bpf_object__find_program_by_name(object, program.c_str());
    if (kernel_program == nullptr) {
        return error{fmt::format("libbpf finds no program '{}' in {}", program, path)};
    }
    pair->_kernel->program_fd = bpf_program__fd(kernel_program);

    ebpf::load_options load_options;
    load_options.cpus = possible_cpus();
    auto loaded = spec->load(load_options);
    if (!loaded) {
        return error{"sluice cannot load " + path + ": " + loaded.error().message};
    }
    pair->_loaded.emplace(std::move(loaded.value()));
    const ebpf::loaded_program* chosen = pair->_loaded->find_program(program);
    if (chosen == nullptr) {
        return error{fmt::format("sluice finds no program '{}' in {}", program, path)};
    }
    // Every program of the object is a tail-call target, as the executor arranges (prog_array slots hold
    // `const loaded_program*` handles).
    for (const auto& candidate : pair->_loaded->programs()) {
        auto runnable = ebpf::runnable_program::prepare(candidate->code, ebpf::xdp_helper_table());
        if (!runnable) {
            return error{fmt::format("sluice refused program '{}': {}", candidate->name, runnable.error().message)};
        }
        pair->_registry.add(candidate.get(), *runnable);
    }
    if (auto prepared = pair->prepare_sluice(chosen->code, options.engine); !prepared) {
        return prepared.error();
    }
    const auto& specs = pair->_loaded->map_specs();
    for (std::size_t i = 0; i < specs.size(); ++i) {
        bpf_map* kernel_map = bpf_object__find_map_by_name(object, specs[i].name.c_str());
        if (kernel_map == nullptr) {
            return error{fmt::format("libbpf has no map '{}' (sluice's map {} of {})", specs[i].name, i, path)};
        }
        map_pair paired;
        paired.name = specs[i].name;
        paired.definition = specs[i].definition;
        paired.kernel_fd = bpf_map__fd(kernel_map);
        paired.sluice = pair->_loaded->maps()[i].get();
        if (specs[i].definition.type == ebpf::map_type::prog_array) {
            paired.compare = map_pair::comparison::skip;
            paired.why_not_full = "prog_array values are program ids, which differ between the kernel and sluice";
        }
        pair->_maps.push_back(std::move(paired));
    }
    return pair;
}

expected<std::unique_ptr<oracle_pair>> oracle_pair::from_generated(const testing::generated_program& program,
                                                                   sluice_engine engine) {
    std::unique_ptr<oracle_pair> pair(new oracle_pair());
    std::vector<int> fds;
    for (const ebpf::map_definition& definition : program.maps) {
        LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = definition.map_flags);
        const int fd = bpf_map_create(static_cast<bpf_map_type>(definition.type), definition.name.c_str(),
                                      definition.key_size, definition.value_size, definition.max_entries, &options);
        if (fd < 0) {
            return error{fmt::format("the kernel refused map '{}': {}", definition.name, errno_text(fd))};
        }
        pair->_kernel->own_fds.push_back(fd);
        fds.push_back(fd);
    }
    const std::vector<ebpf::instruction> code = testing::kernel_form(program.code, fds);
    std::string log(1 << 22, '\0');
    LIBBPF_OPTS(bpf_prog_load_opts, options, .log_level = 1, .log_size = static_cast<__u32>(log.size()),
                .log_buf = log.data());
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "generated", "GPL", reinterpret_cast<const bpf_insn*>(code.data()),
                                 code.size(), &options);
    if (fd < 0) {
        return error{
            fmt::format("the kernel's verifier refused the program: {}\n{}", errno_text(fd), tail(log.c_str()))};
    }
    if (const char* path = std::getenv("SLUICE_ORACLE_VERIFIER_LOG"); path != nullptr && access(path, F_OK) != 0) {
        // Debugging aid: the verifier's whole reasoning (log level 2) for the first generated program loaded.
        LIBBPF_OPTS(bpf_prog_load_opts, verbose, .log_level = 2, .log_size = static_cast<__u32>(log.size()),
                    .log_buf = log.data());
        const int again = bpf_prog_load(BPF_PROG_TYPE_XDP, "generated", "GPL",
                                        reinterpret_cast<const bpf_insn*>(code.data()), code.size(), &verbose);
        if (again >= 0) {
            close(again);
        }
        if (std::FILE* file = std::fopen(path, "w"); file != nullptr) {
            std::fputs(log.c_str(), file);
            std::fclose(file);
        }
    }
    pair->_kernel->own_fds.push_back(fd);
    pair->_kernel->program_fd = fd;

    auto ready = testing::instantiate(program, possible_cpus());
    if (!ready) {
        return error{"sluice cannot instantiate the program: " + ready.error().message};
    }
    pair->_instantiated.emplace(std::move(ready.value()));
    if (auto prepared = pair->prepare_sluice(pair->_instantiated->code, engine); !prepared) {
        return prepared.error();
    }
    for (std::size_t i = 0; i < program.maps.size(); ++i) {
        map_pair paired;
        paired.name = program.maps[i].name;
        paired.definition = program.maps[i];
        paired.kernel_fd = fds[i];
        paired.sluice = pair->_instantiated->maps[i].get();
        pair->_maps.push_back(std::move(paired));
    }
    return pair;
}

std::string oracle_pair::kernel_program_text() const {
    bpf_prog_info info{};
    __u32 length = sizeof info;
    if (const int got = bpf_obj_get_info_by_fd(_kernel->program_fd, &info, &length); got != 0) {
        return "bpf_prog_get_info_by_fd: " + errno_text(got);
    }
    std::vector<ebpf::instruction> code(info.xlated_prog_len / sizeof(ebpf::instruction));
    const __u32 bytes = info.xlated_prog_len;
    info = {};
    info.xlated_prog_len = bytes;
    info.xlated_prog_insns = reinterpret_cast<std::uintptr_t>(code.data());
    length = sizeof info;
    if (const int got = bpf_obj_get_info_by_fd(_kernel->program_fd, &info, &length); got != 0) {
        return "bpf_prog_get_info_by_fd: " + errno_text(got);
    }
    std::string text;
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
        text += fmt::format("  {:4}: {}\n", pc, ebpf::disassemble(code, pc));
        if (code[pc].opcode == ebpf::op::lddw) {
            ++pc;
        }
    }
    return text;
}

map_pair* oracle_pair::find_map(std::string_view name) {
    for (map_pair& pair : _maps) {
        if (pair.name == name) {
            return &pair;
        }
    }
    return nullptr;
}

std::string oracle_pair::update_both(std::string_view name, std::span<const std::uint8_t> key,
                                     std::span<const std::uint8_t> value, std::uint64_t flags) {
    map_pair* pair = find_map(name);
    if (pair == nullptr) {
        return fmt::format("no map '{}'", name);
    }
    const long kernel = bpf_map_update_elem(pair->kernel_fd, key.data(), value.data(), flags);
    const long sluice = pair->sluice->update_elem(key.data(), value.data(), flags);
    if (kernel != sluice) {
        return fmt::format("update of map '{}' key {} flags {}: kernel returned {}, sluice {}", name, hex(key), flags,
                           kernel, sluice);
    }
    return {};
}

std::string oracle_pair::fill_randomly(std::uint64_t seed, std::size_t count) {
    std::uint64_t state = seed;
    auto next = [&state] {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    };
    std::string problems;
    for (map_pair& pair : _maps) {
        const ebpf::map_type type = pair.definition.type;
        const bool array = type == ebpf::map_type::array || type == ebpf::map_type::percpu_array;
        const bool hash = type == ebpf::map_type::hash || type == ebpf::map_type::percpu_hash ||
                          type == ebpf::map_type::lru_hash || type == ebpf::map_type::lru_percpu_hash;
        if ((!array && !hash) || pair.compare == map_pair::comparison::skip) {
            continue;
        }
        // Hash keys stay few (8 at most, a quarter of the entries): no map fills and no LRU evicts.
        const std::uint64_t keys = array ? pair.definition.max_entries
                                         : std::min<std::uint64_t>(8, std::max(1U, pair.definition.max_entries / 4));
        for (std::size_t i = 0; i < count; ++i) {
            bytes key(pair.definition.key_size, 0);
            const std::uint64_t index = next() % keys;
            std::memcpy(key.data(), &index, std::min<std::size_t>(key.size(), sizeof index));
            bytes value(syscall_value_size(pair.definition));
            for (auto& byte : value) {
                byte = static_cast<std::uint8_t>(next());
            }
            problems += update_both(pair.name, key, value, 0);
        }
    }
    return problems;
}

run_result oracle_pair::run_kernel(const test_packet& packet, std::uint32_t ifindex, std::uint32_t rx_queue) {
    run_result result;
    bytes in(packet.meta);
    in.insert(in.end(), packet.bytes.begin(), packet.bytes.end());
    bytes out(in.size() + 8192);
    xdp_md context_in{};
    context_in.data = static_cast<__u32>(packet.meta.size());
    context_in.data_end = static_cast<__u32>(in.size());
    context_in.ingress_ifindex = ifindex;
    context_in.rx_queue_index = rx_queue;
    xdp_md context_out{};
    LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(in.size()), .data_size_out = static_cast<__u32>(out.size()),
                .ctx_in = &context_in, .ctx_out = &context_out, .ctx_size_in = sizeof context_in,
                .ctx_size_out = sizeof context_out, .repeat = 1);
    const int run = bpf_prog_test_run_opts(_kernel->program_fd, &options);
    if (run != 0) {
        result.error = "BPF_PROG_TEST_RUN: " + errno_text(run);
        return result;
    }
    result.retval = options.retval;
    out.resize(std::min<std::size_t>(options.data_size_out, out.size()));
    // data_out is the metadata, the linear part (up to ctx_out.data_end) and, for packets beyond one page, the
    // fragments: the whole packet.
    const std::size_t meta = std::min<std::size_t>(context_out.data, out.size());
    result.meta.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(meta));
    result.packet.assign(out.begin() + static_cast<std::ptrdiff_t>(meta), out.end());
    return result;
}

run_result oracle_pair::run_sluice(const test_packet& packet, std::uint32_t ifindex, std::uint32_t rx_queue) {
    run_result result;
    xdp::frame_pool& pool = packet.bytes.size() > xdp::standard_frame_capacity ? _jumbo_pool : _pool;
    xdp::frame* frame = pool.acquire();
    if (frame != nullptr) {
        // BPF_PROG_TEST_RUN gives each run a zeroed buffer (kzalloc); a recycled frame keeps the bytes of earlier
        // packets in its headroom, as a driver's recycled pages do, which adjust_head/adjust_meta can expose.
        std::memset(frame->hard_start(), 0, frame->frame_size());
    }
    if (frame == nullptr || !frame->assign(packet.bytes)) {
        if (frame != nullptr) {
            pool.release(frame);
        }
        result.error = fmt::format("a {}-byte packet does not fit a frame", packet.bytes.size());
        return result;
    }
    ebpf::xdp_context& context = frame->context();
    context.data_meta = context.data - packet.meta.size();
    std::copy(packet.meta.begin(), packet.meta.end(), context.data_meta);
    frame->set_ingress(ifindex, rx_queue);
    _state.begin_packet(context);
    const std::array<std::uint64_t, 5> arguments{reinterpret_cast<std::uintptr_t>(&context), 0, 0, 0, 0};
    expected<std::uint64_t> run = std::uint64_t{0};
    if (_jit) {
        run = _jit->run(arguments, &_state);
    } else {
        _memory.begin_packet(*frame);
        run = _machine->run(arguments, &_state);
    }
    if (!run) {
        result.error = "sluice: " + run.error().message;
    } else {
        result.retval = static_cast<std::uint32_t>(*run);
    }
    result.meta.assign(context.data_meta, context.data);
    result.packet.assign(context.data, context.data_end);
    pool.release(frame);
    return result;
}

std::string oracle_pair::compare(const test_packet& packet, bool with_maps) {
    const run_result kernel = run_kernel(packet);
    const run_result sluice = run_sluice(packet);
    ++_counts.packets;
    std::string differences;
    if (kernel.error != sluice.error) {
        differences += fmt::format("  kernel: {}\n  sluice: {}\n", kernel.error.empty() ? "ran" : kernel.error,
                                   sluice.error.empty() ? "ran" : sluice.error);
    }
    if (kernel.error.empty() && sluice.error.empty()) {
        if (kernel.retval != sluice.retval) {
            differences += fmt::format("  return code differs: kernel {}, sluice {}\n", kernel.retval, sluice.retval);
        }
        differences += byte_difference("output packet", kernel.packet, sluice.packet);
        differences += byte_difference("metadata", kernel.meta, sluice.meta);
    }
    if (with_maps) {
        differences += compare_maps();
    }
    if (differences.empty()) {
        return {};
    }
    return fmt::format("packet: {} ({} bytes, {} bytes of metadata)\n{}{}  kernel: retval {}, {} bytes out, {} "
                       "bytes of metadata\n  sluice: retval {}, {} bytes out, {} bytes of metadata\n{}",
                       packet.description, packet.bytes.size(), packet.meta.size(), hex_dump(packet.bytes, 4),
                       packet.meta.empty() ? "" : "  metadata:\n" + hex_dump(packet.meta, 4), kernel.retval,
                       kernel.packet.size(), kernel.meta.size(), sluice.retval, sluice.packet.size(),
                       sluice.meta.size(), differences);
}

std::string oracle_pair::compare_maps() {
    std::string text;
    for (map_pair& pair : _maps) {
        if (pair.compare == map_pair::comparison::skip) {
            continue;
        }
        ++_counts.map_comparisons;
        const ebpf::map_type type = pair.definition.type;
        if (type == ebpf::map_type::queue || type == ebpf::map_type::stack) {
            // Drained on both sides, compared in order, and pushed back as they were.
            std::vector<bytes> kernel;
            std::vector<bytes> sluice;
            bytes value(pair.definition.value_size);
            while (bpf_map_lookup_and_delete_elem(pair.kernel_fd, nullptr, value.data()) == 0) {
                kernel.push_back(value);
            }
            while (pair.sluice->lookup_and_delete_elem(nullptr, value.data()) == 0) {
                sluice.push_back(value);
            }
            if (kernel != sluice) {
                text += fmt::format("  map '{}' ({}): kernel holds {} elements, sluice {}\n", pair.name,
                                    ebpf::to_string(type), kernel.size(), sluice.size());
                for (std::size_t i = 0; i < std::max(kernel.size(), sluice.size()); ++i) {
                    text += fmt::format("    {}: kernel {}, sluice {}\n", i, i < kernel.size() ? hex(kernel[i]) : "-",
                                        i < sluice.size() ? hex(sluice[i]) : "-");
                }
            }
            if (type == ebpf::map_type::stack) {
                std::reverse(kernel.begin(), kernel.end());
                std::reverse(sluice.begin(), sluice.end());
            }
            for (const bytes& element : kernel) {
                bpf_map_update_elem(pair.kernel_fd, nullptr, element.data(), 0);
            }
            for (const bytes& element : sluice) {
                (void)pair.sluice->update_elem(nullptr, element.data(), 0);
            }
            continue;
        }
        if (type == ebpf::map_type::ringbuf) {
            if (pair.kernel_ring == nullptr) {
                pair.kernel_ring = ring_buffer__new(
                    pair.kernel_fd,
                    [](void* context, void* data, std::size_t size) {
                        auto* records = static_cast<std::vector<bytes>*>(context);
                        const auto* begin = static_cast<const std::uint8_t*>(data);
                        records->emplace_back(begin, begin + size);
                        return 0;
                    },
                    &pair.kernel_records, nullptr);
            }
            if (pair.kernel_ring == nullptr) {
                text += fmt::format("  map '{}': cannot read the kernel's ring buffer\n", pair.name);
                continue;
            }
            ring_buffer__consume(pair.kernel_ring);
            std::vector<bytes> kernel = std::move(pair.kernel_records);
            pair.kernel_records.clear();
            std::vector<bytes> sluice;
            if (auto* ring = dynamic_cast<ebpf::ringbuf_map*>(pair.sluice); ring != nullptr) {
                ring->consume([&sluice](std::span<const std::byte> record) {
                    const auto* begin = reinterpret_cast<const std::uint8_t*>(record.data());
                    sluice.emplace_back(begin, begin + record.size());
                    return 0;
                });
            }
            if (kernel != sluice) {
                text += fmt::format("  ring buffer '{}': kernel produced {} records, sluice {}\n", pair.name,
                                    kernel.size(), sluice.size());
                for (std::size_t i = 0; i < std::max(kernel.size(), sluice.size()); ++i) {
                    text += fmt::format("    {}: kernel {}, sluice {}\n", i, i < kernel.size() ? hex(kernel[i]) : "-",
                                        i < sluice.size() ? hex(sluice[i]) : "-");
                }
            }
            continue;
        }
        const std::size_t value_size = syscall_value_size(pair.definition);
        contents kernel;
        contents sluice;
        bytes key(pair.definition.key_size);
        bytes next(pair.definition.key_size);
        bytes value(value_size);
        int status = bpf_map_get_next_key(pair.kernel_fd, nullptr, next.data());
        for (std::size_t guard = 0; status == 0 && guard < 1'000'000; ++guard) {
            if (bpf_map_lookup_elem(pair.kernel_fd, next.data(), value.data()) == 0) {
                kernel[as_key(next)] = value;
            }
            key = next;
            status = bpf_map_get_next_key(pair.kernel_fd, key.data(), next.data());
        }
        long found = pair.sluice->get_next_key(nullptr, next.data());
        for (std::size_t guard = 0; found == 0 && guard < 1'000'000; ++guard) {
            if (pair.sluice->lookup_elem(next.data(), value.data()) == 0) {
                sluice[as_key(next)] = value;
            }
            key = next;
            found = pair.sluice->get_next_key(key.data(), next.data());
        }
        if (const std::string difference = contents_difference(pair, kernel, sluice); !difference.empty()) {
            text += fmt::format(
                "  map '{}' ({}, key {} value {}{}) differs:\n{}", pair.name, ebpf::to_string(type),
                pair.definition.key_size, pair.definition.value_size,
                pair.compare == map_pair::comparison::keys_only ? ", keys only: " + pair.why_not_full : "", difference);
        }
    }
    return text;
}

namespace {

/// `code` with [r0 = rX; (r0 >>= 32;) r0 ^= mark; if r6 == 0 goto +1; exit] inserted before instruction `at`; jumps
/// to `at` land on the probe. Two marks tell whether the probe was reached at all: only then do the results differ.
std::vector<ebpf::instruction> insert_probe(std::span<const ebpf::instruction> code, std::size_t at, int reg, bool high,
                                            std::int32_t mark) {
    namespace op = ebpf::op;
    std::vector<ebpf::instruction> probe{
        ebpf::make_instruction(op::cls_alu64 | op::alu_mov | op::src_x, 0, static_cast<std::uint8_t>(reg))};
    if (high) {
        probe.push_back(ebpf::make_instruction(op::cls_alu64 | op::alu_rsh | op::src_k, 0, 0, 0, 32));
    }
    probe.push_back(ebpf::make_instruction(op::cls_alu64 | op::alu_xor | op::src_k, 0, 0, 0, mark));
    // The rest of the program must stay reachable for the kernel's CFG check ("unreachable insn"): a branch that
    // never goes (ctx is never NULL, and the verifier knows it) skips the exit.
    probe.push_back(ebpf::make_instruction(op::cls_jmp | op::jmp_jeq | op::src_k, 6, 0, 1, 0));
    probe.push_back(ebpf::make_instruction(op::exit));
    const auto k = static_cast<std::int64_t>(probe.size());
    const auto p = static_cast<std::int64_t>(at);
    std::vector<ebpf::instruction> result(code.begin(), code.begin() + p);
    result.insert(result.end(), probe.begin(), probe.end());
    result.insert(result.end(), code.begin() + p, code.end());
    auto moved = [&](std::int64_t index) { return index < p ? index : index + k; };
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(code.size()); ++i) {
        const ebpf::instruction& insn = code[static_cast<std::size_t>(i)];
        if (insn.opcode == op::lddw) {
            ++i;
            continue;
        }
        const std::uint8_t operation = op::alu_op(insn.opcode);
        if (!op::is_jump(insn.opcode) || operation == op::jmp_call || operation == op::jmp_exit) {
            continue;
        }
        const bool long_jump = insn.opcode == op::ja32;
        const std::int64_t target = i + 1 + (long_jump ? insn.imm : insn.offset);
        const std::int64_t new_target = target == p ? p : moved(target);
        const std::int64_t new_index = moved(i);
        ebpf::instruction& changed = result[static_cast<std::size_t>(new_index)];
        if (long_jump) {
            changed.imm = static_cast<std::int32_t>(new_target - new_index - 1);
        } else {
            changed.offset = static_cast<std::int16_t>(new_target - new_index - 1);
        }
    }
    return result;
}

/// One probe's results on the last packet, both sides; nullopt when the kernel refuses it (register not readable).
std::optional<std::array<std::uint32_t, 2>> run_probe(const testing::generated_program& program,
                                                      std::vector<ebpf::instruction> code,
                                                      std::span<const test_packet> packets, std::uint64_t fill_seed,
                                                      std::size_t fill_count) {
    testing::generated_program probe = program;
    probe.code = std::move(code);
    auto pair = oracle_pair::from_generated(probe);
    if (!pair) {
        return std::nullopt;
    }
    (void)(*pair)->fill_randomly(fill_seed, fill_count);
    for (std::size_t i = 0; i + 1 < packets.size(); ++i) {
        (void)(*pair)->run_kernel(packets[i]);
        (void)(*pair)->run_sluice(packets[i]);
    }
    return std::array<std::uint32_t, 2>{(*pair)->run_kernel(packets.back()).retval,
                                        (*pair)->run_sluice(packets.back()).retval};
}

} // namespace

std::string kernel_xlated(const testing::generated_program& program) {
    auto pair = oracle_pair::from_generated(program);
    if (!pair) {
        return pair.error().message;
    }
    return (*pair)->kernel_program_text();
}

std::string locate_divergence(const testing::generated_program& program, std::span<const test_packet> packets,
                              std::uint64_t fill_seed, std::size_t fill_count) {
    if (packets.empty()) {
        return "no packets";
    }
    constexpr std::int32_t mark = 0x5a5a5a5a;
    for (std::size_t at = 0; at < program.code.size(); ++at) {
        if (at > 0 && program.code[at - 1].opcode == ebpf::op::lddw) {
            continue; // the second half of a 64-bit load
        }
        std::string found;
        for (int reg = 0; reg <= 9; ++reg) {
            std::array<std::uint64_t, 2> value{}; // kernel, sluice
            bool usable = true;
            for (const bool high : {false, true}) {
                const auto plain =
                    run_probe(program, insert_probe(program.code, at, reg, high, 0), packets, fill_seed, fill_count);
                const auto marked =
                    run_probe(program, insert_probe(program.code, at, reg, high, mark), packets, fill_seed, fill_count);
                if (!plain || !marked) {
                    usable = false; // the verifier says the register is not readable there
                    break;
                }
                const bool kernel_reached = ((*plain)[0] ^ (*marked)[0]) == static_cast<std::uint32_t>(mark);
                const bool sluice_reached = ((*plain)[1] ^ (*marked)[1]) == static_cast<std::uint32_t>(mark);
                if (kernel_reached != sluice_reached) {
                    return fmt::format("first divergence: instruction {} ({}) is reached by {} only\nthe kernel's "
                                       "program after its verifier (xlated):\n{}",
                                       at, ebpf::disassemble(program.code, at),
                                       kernel_reached ? "the kernel" : "sluice", kernel_xlated(program));
                }
                if (!kernel_reached) {
                    usable = false;
                    break;
                }
                value[0] |= std::uint64_t{(*plain)[0]} << (high ? 32 : 0);
                value[1] |= std::uint64_t{(*plain)[1]} << (high ? 32 : 0);
            }
            if (std::getenv("SLUICE_ORACLE_VERBOSE") != nullptr) {
                std::fprintf(stderr, "probe before %zu r%d: %s kernel %#llx sluice %#llx\n", at, reg,
                             usable ? "reached" : "unreadable or not reached",
                             static_cast<unsigned long long>(value[0]), static_cast<unsigned long long>(value[1]));
            }
            if (usable && value[0] != value[1]) {
                found += fmt::format("    r{}: kernel {:#x}, sluice {:#x}\n", reg, value[0], value[1]);
            }
        }
        if (!found.empty()) {
            const std::string before = at > 0 ? ebpf::disassemble(program.code, at - 1) : std::string("(start)");
            return fmt::format("first divergence: before instruction {} ({}); the instruction before it is {}:\n{}", at,
                               ebpf::disassemble(program.code, at), before, found);
        }
    }
    return "no register differs before any instruction: the difference is in memory, the packet or a helper's "
           "effect\n";
}

} // namespace sluice::oracle
