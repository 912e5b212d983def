// The variants every build of `sluice bench` has: sluice's executor with each engine, and the kernel's JIT through
// BPF_PROG_TEST_RUN on the same object loaded by libbpf.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "bench_command.hpp"
#include "bench_frame.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::cli {
namespace {

/// sluice's executor with one engine: the data path as `sluice run` drives it.
class executor_variant final : public bench_variant {
public:
    executor_variant(bench_target target, xdp::executor_options options)
        : _target(std::move(target)), _options(std::move(options)) {}

    expected<void> reset() override {
        _executor.reset();
        auto loaded = load_bench_object(_target);
        if (!loaded) {
            return loaded.error();
        }
        _object = std::move(*loaded);
        _state = std::make_unique<ebpf::execution_state>(0);
        _state->trace = &drop_bench_trace; // bpf_printk lines would be timed as output, not as the program
        auto created =
            xdp::executor::create(_object->object, *_object->program, ebpf::xdp_helper_table(), *_state, _options);
        if (!created) {
            return created.error();
        }
        _executor.emplace(std::move(*created));
        return {};
    }

    expected<packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        return _frame.run_once(_executor ? &*_executor : nullptr, packet);
    }

    expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) override {
        return _frame.time(_executor ? &*_executor : nullptr, packet, repeat);
    }

private:
    bench_target _target;
    xdp::executor_options _options;
    std::unique_ptr<bench_object> _object;
    std::unique_ptr<ebpf::execution_state> _state;
    std::optional<xdp::executor> _executor;
    bench_frame _frame;
};

int silent_libbpf(libbpf_print_level, const char*, va_list) {
    return 0;
}

/// The kernel's JIT: the same object loaded by libbpf, the same knobs and map contents, run by BPF_PROG_TEST_RUN.
class kernel_variant final : public bench_variant {
public:
    explicit kernel_variant(bench_target target) : _target(std::move(target)) {}
    kernel_variant(const kernel_variant&) = delete;
    kernel_variant& operator=(const kernel_variant&) = delete;
    ~kernel_variant() override { close(); }

    expected<void> reset() override {
        close();
        auto loaded = load_bench_object(_target); // what sluice's variants start from: the contents to copy
        if (!loaded) {
            return loaded.error();
        }
        const bench_object& reference = **loaded;
        // The column is the kernel's JIT: with the JIT off the kernel would interpret, which is another comparison.
        if (std::ifstream setting("/proc/sys/net/core/bpf_jit_enable"); setting) {
            int enabled = 1;
            setting >> enabled;
            if (enabled == 0) {
                return error{"kernel: n/a (net.core.bpf_jit_enable is 0: the kernel would interpret the program)"};
            }
        }
        libbpf_set_print(&silent_libbpf); // failures are reported below, with the reason
        _object = bpf_object__open_file(_target.file.c_str(), nullptr);
        if (_object == nullptr) {
            return error{fmt::format("libbpf cannot open {}: {}", _target.file, std::strerror(errno))};
        }
        // .rodata knobs (--set): the bytes sluice's spec holds after set_rodata(), before load, as a skeleton does.
        for (const ebpf::map_spec& map : reference.spec.maps()) {
            if (map.origin != ebpf::map_origin::global_data || !map.read_only || map.initial_value.empty()) {
                continue;
            }
            bpf_map* kernel_map = bpf_object__find_map_by_name(_object, map.name.c_str());
            if (kernel_map == nullptr ||
                bpf_map__set_initial_value(kernel_map, map.initial_value.data(), map.initial_value.size()) != 0) {
                return error{fmt::format("libbpf: cannot set the initial value of {}", map.name)};
            }
        }
        if (const int failed = bpf_object__load(_object); failed != 0) {
            return error{fmt::format("kernel: n/a (bpf_object__load: {}; needs root or CAP_BPF and a kernel with BPF)",
                                     std::strerror(-failed))};
        }
        bpf_program* program = bpf_object__find_program_by_name(_object, reference.program->name.c_str());
        if (program == nullptr) {
            return error{fmt::format("libbpf found no program {}", reference.program->name)};
        }
        _program_fd = bpf_program__fd(program);
        for (const std::string& assignment : _target.prog_arrays) {
            if (auto done = set_slot(assignment); !done) {
                return done;
            }
        }
        for (const std::string& assignment : _target.maps) {
            const std::string name = assignment.substr(0, assignment.find('='));
            if (auto copied = copy_map(reference, name); !copied) {
                return copied;
            }
        }
        return {};
    }

    expected<packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        std::vector<std::uint8_t> out(xdp::standard_frame_size);
        LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(), .data_out = out.data(),
                    .data_size_in = static_cast<__u32>(packet.size()), .data_size_out = static_cast<__u32>(out.size()),
                    .repeat = 1);
        if (const int failed = bpf_prog_test_run_opts(_program_fd, &options); failed != 0) {
            return error{fmt::format("kernel: bpf_prog_test_run_opts: {}", std::strerror(-failed))};
        }
        out.resize(options.data_size_out);
        // As the data path reads it: unknown return codes are XDP_ABORTED (bpf_warn_invalid_xdp_action).
        const auto action = xdp::from_return_code(options.retval);
        return packet_outcome{static_cast<std::uint32_t>(action.value_or(xdp::action::aborted)), std::move(out)};
    }

    expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) override {
        LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(),
                    .data_size_in = static_cast<__u32>(packet.size()),
                    .repeat = static_cast<int>(std::min<std::uint64_t>(repeat, 1U << 30)));
        if (const int failed = bpf_prog_test_run_opts(_program_fd, &options); failed != 0) {
            return error{fmt::format("kernel: bpf_prog_test_run_opts: {}", std::strerror(-failed))};
        }
        return static_cast<double>(options.duration); // the kernel's own ns per run
    }

private:
    void close() {
        if (_object != nullptr) {
            bpf_object__close(_object);
            _object = nullptr;
        }
    }

    expected<void> set_slot(const std::string& assignment) {
        const std::size_t open = assignment.find('[');
        const std::size_t close_bracket = assignment.find("]=");
        if (open == std::string::npos || close_bracket == std::string::npos) {
            return error{fmt::format("--prog-array '{}': expected MAP[INDEX]=PROGRAM", assignment)};
        }
        const std::string map_name = assignment.substr(0, open);
        const std::uint32_t index = static_cast<std::uint32_t>(std::stoul(assignment.substr(open + 1)));
        bpf_map* map = bpf_object__find_map_by_name(_object, map_name.c_str());
        bpf_program* program = bpf_object__find_program_by_name(_object, assignment.substr(close_bracket + 2).c_str());
        if (map == nullptr || program == nullptr) {
            return error{fmt::format("--prog-array {}: libbpf finds no such map or program", assignment)};
        }
        const int fd = bpf_program__fd(program);
        if (bpf_map_update_elem(bpf_map__fd(map), &index, &fd, BPF_ANY) != 0) {
            return error{fmt::format("--prog-array {}: kernel: {}", assignment, std::strerror(errno))};
        }
        return {};
    }

    /// Copies the entries sluice's map holds after --map into the kernel's map of the same name. Per-CPU values
    /// (one worker in sluice) go to every possible CPU, so the kernel's program finds them wherever it runs.
    expected<void> copy_map(const bench_object& reference, const std::string& name) {
        ebpf::map* source = reference.object.find_map(name);
        bpf_map* target = bpf_object__find_map_by_name(_object, name.c_str());
        if (source == nullptr || target == nullptr) {
            return error{fmt::format("--map {}: libbpf finds no such map", name)};
        }
        const int fd = bpf_map__fd(target);
        const int cpus = source->is_percpu() ? libbpf_num_possible_cpus() : 1;
        std::optional<std::string> failure;
        std::vector<std::byte> value;
        source->for_each([&](std::span<const std::byte> key, std::span<const std::byte> slot) {
            value.clear();
            for (int cpu = 0; cpu < cpus; ++cpu) {
                value.insert(value.end(), slot.begin(), slot.end());
            }
            if (bpf_map_update_elem(fd, key.data(), value.data(), BPF_ANY) != 0) {
                failure = fmt::format("--map {}: the kernel refused an entry: {}", name, std::strerror(errno));
                return false;
            }
            return true;
        });
        if (failure) {
            return error{*failure};
        }
        return {};
    }

    bench_target _target;
    bpf_object* _object{};
    int _program_fd{-1};
};

template <typename Variant, typename... Arguments>
expected<std::unique_ptr<bench_variant>> make_variant(Arguments&&... arguments) {
    return std::unique_ptr<bench_variant>(std::make_unique<Variant>(std::forward<Arguments>(arguments)...));
}

variant_factory executor_factory(std::string name, variant_role role, bool checked, xdp::execution_engine engine) {
    return {std::move(name), role, [checked, engine](const bench_target& target) {
                xdp::executor_options options;
                options.checked = checked;
                options.engine = engine;
                // Checked mode stops a run after as many instructions as the kernel's verifier would ever process,
                // as `sluice run` does.
                options.instruction_limit = checked ? 1'000'000 : 0;
                options.log = [](std::string_view line) { fmt::print(stderr, "sluice bench: {}\n", line); };
                return make_variant<executor_variant>(target, std::move(options));
            }};
}

} // namespace

std::vector<variant_factory> standard_variants() {
    std::vector<variant_factory> factories;
    factories.push_back(
        executor_factory("interpreter", variant_role::interpreter, false, xdp::execution_engine::interpreter));
    factories.push_back(
        executor_factory("checked", variant_role::interpreter_checked, true, xdp::execution_engine::interpreter));
    factories.push_back(executor_factory("JIT", variant_role::jit, false, xdp::execution_engine::jit));
    factories.push_back({"kernel", variant_role::kernel,
                         [](const bench_target& target) { return make_variant<kernel_variant>(target); }});
    return factories;
}

} // namespace sluice::cli
