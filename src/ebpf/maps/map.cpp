// The map base: the control-plane checks the bpf() system call makes before a kind sees the call (access flags,
// freeze, BPF_F_LOCK), map_create's common checks, and the factory.
#include <cctype>
#include <new>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf {

std::string_view to_string(map_type type) {
    switch (type) {
    case map_type::hash: return "hash";
    case map_type::array: return "array";
    case map_type::prog_array: return "prog_array";
    case map_type::percpu_hash: return "percpu_hash";
    case map_type::percpu_array: return "percpu_array";
    case map_type::lru_hash: return "lru_hash";
    case map_type::lru_percpu_hash: return "lru_percpu_hash";
    case map_type::lpm_trie: return "lpm_trie";
    case map_type::devmap: return "devmap";
    case map_type::devmap_hash: return "devmap_hash";
    case map_type::cpumap: return "cpumap";
    case map_type::xskmap: return "xskmap";
    case map_type::queue: return "queue";
    case map_type::stack: return "stack";
    case map_type::ringbuf: return "ringbuf";
    }
    return "unknown";
}

map::map(map_definition definition, unsigned cpus) : _definition(std::move(definition)), _cpus(cpus) {}

bool map::is_percpu() const {
    const auto kind = type();
    return kind == map_type::percpu_array || kind == map_type::percpu_hash || kind == map_type::lru_percpu_hash;
}

long map::push(const void*, std::uint64_t) { return -EINVAL; }
long map::pop(void*) { return -EINVAL; }
long map::peek(void*) { return -EINVAL; }
long map::sys_lookup_and_delete(const void*, void*) { return -enotsupp; }

std::size_t map::syscall_value_size() const {
    return is_percpu() ? std::size_t{_cpus} * maps::round_up8(value_size()) : value_size();
}

// map_get_sys_perms(): BPF_F_RDONLY / BPF_F_WRONLY restrict the control plane; a frozen map is not writable.
long map::lookup_elem(const void* key, void* value) {
    if (_definition.map_flags & map_flag::wronly) {
        return -EPERM;
    }
    std::lock_guard guard(_control);
    return sys_lookup(key, value);
}

long map::update_elem(const void* key, const void* value, std::uint64_t flags) {
    std::lock_guard guard(_control);
    if ((_definition.map_flags & map_flag::rdonly) || _frozen) {
        return -EPERM;
    }
    if (flags & update_flag::lock) {
        return -EINVAL; // no bpf_spin_lock in sluice's values (the kernel: btf_record_has_field(BPF_SPIN_LOCK))
    }
    return sys_update(key, value, flags);
}

long map::delete_elem(const void* key) {
    std::lock_guard guard(_control);
    if ((_definition.map_flags & map_flag::rdonly) || _frozen) {
        return -EPERM;
    }
    return sys_delete(key);
}

long map::get_next_key(const void* key, void* next_key) {
    if (_definition.map_flags & map_flag::wronly) {
        return -EPERM;
    }
    std::lock_guard guard(_control);
    return sys_get_next_key(key, next_key);
}

long map::lookup_and_delete_elem(const void* key, void* value) {
    std::lock_guard guard(_control);
    if ((_definition.map_flags & (map_flag::rdonly | map_flag::wronly)) || _frozen) {
        return -EPERM;
    }
    return sys_lookup_and_delete(key, value);
}

long map::freeze() {
    std::lock_guard guard(_control);
    // map_freeze() first asks for write permission, which a frozen map no longer gives: -EPERM, not -EBUSY.
    if (_frozen || (_definition.map_flags & map_flag::rdonly)) {
        return -EPERM;
    }
    _frozen = true;
    return 0;
}

bool map::frozen() const {
    // Written under _control, read by the verifier at load time: a relaxed read of a bool that only goes up.
    return __atomic_load_n(&_frozen, __ATOMIC_RELAXED);
}

bool map::is_constant_for_programs() const { return (_definition.map_flags & map_flag::rdonly_prog) && frozen(); }

long map::for_each(const std::function<bool(std::span<const std::byte>, std::span<const std::byte>)>& visit) {
    std::vector<std::byte> key(key_size());
    std::vector<std::byte> next(key_size());
    std::vector<std::byte> value(syscall_value_size());
    const void* previous = nullptr;
    for (;;) {
        const long status = get_next_key(previous, next.data());
        if (status == -ENOENT) {
            return 0;
        }
        if (status != 0) {
            return status;
        }
        key.swap(next);
        previous = key.data();
        // A key deleted between the two calls is skipped, as a bpftool dump does.
        if (lookup_elem(key.data(), value.data()) == 0 && !visit(key, value)) {
            return 0;
        }
    }
}

namespace maps {

std::uint32_t jhash(const void* key, std::uint32_t length, std::uint32_t seed) {
    const auto rol = [](std::uint32_t word, int shift) { return (word << shift) | (word >> (32 - shift)); };
    const auto* bytes = static_cast<const std::uint8_t*>(key);
    std::uint32_t a = 0xdeadbeef + length + seed; // JHASH_INITVAL
    std::uint32_t b = a;
    std::uint32_t c = a;
    const auto word = [&](std::size_t at) {
        std::uint32_t value;
        std::memcpy(&value, bytes + at, 4); // __get_unaligned_cpu32: host order, x86-64 is little-endian
        return value;
    };
    while (length > 12) {
        a += word(0);
        b += word(4);
        c += word(8);
        a -= c; a ^= rol(c, 4); c += b;   // __jhash_mix
        b -= a; b ^= rol(a, 6); a += c;
        c -= b; c ^= rol(b, 8); b += a;
        a -= c; a ^= rol(c, 16); c += b;
        b -= a; b ^= rol(a, 19); a += c;
        c -= b; c ^= rol(b, 4); b += a;
        length -= 12;
        bytes += 12;
    }
    if (length == 0) {
        return c;
    }
    // The tail, as the kernel's fall-through switch.
    for (std::uint32_t i = length; i-- > 0;) {
        const std::uint32_t byte = bytes[i];
        const int shift = static_cast<int>((i % 4) * 8);
        if (i >= 8) {
            c += byte << shift;
        } else if (i >= 4) {
            b += byte << shift;
        } else {
            a += byte << shift;
        }
    }
    c ^= b; c -= rol(b, 14);   // __jhash_final
    a ^= c; a -= rol(c, 11);
    b ^= a; b -= rol(a, 25);
    c ^= b; c -= rol(b, 16);
    a ^= c; a -= rol(c, 4);
    b ^= a; b -= rol(a, 14);
    c ^= b; c -= rol(b, 24);
    return c;
}

std::optional<definition_problem> check_flags_allowed(std::uint32_t flags, std::uint32_t allowed) {
    if (flags & ~allowed) {
        return problem(EINVAL, "map_flags", fmt::format("flags {:#x} are not allowed for this kind of map",
                                                        flags & ~allowed));
    }
    if ((flags & map_flag::rdonly_prog) && (flags & map_flag::wronly_prog)) {
        return problem(EINVAL, "map_flags", "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG exclude each other");
    }
    return std::nullopt;
}

} // namespace maps

std::optional<definition_problem> check_definition(const map_definition& definition, unsigned cpus) {
    if (cpus == 0) {
        return maps::problem(EINVAL, "cpus", "a map needs at least one cpu");
    }
    if ((definition.map_flags & map_flag::rdonly) && (definition.map_flags & map_flag::wronly)) {
        return maps::problem(EINVAL, "map_flags", "BPF_F_RDONLY and BPF_F_WRONLY exclude each other");
    }
    std::optional<definition_problem> found;
    switch (definition.type) {
    case map_type::array:
    case map_type::percpu_array: found = maps::check_array(definition, cpus); break;
    case map_type::hash:
    case map_type::percpu_hash:
    case map_type::lru_hash:
    case map_type::lru_percpu_hash: found = maps::check_hash(definition, cpus); break;
    case map_type::lpm_trie: found = maps::check_lpm_trie(definition, cpus); break;
    case map_type::queue:
    case map_type::stack: found = maps::check_queue_stack(definition, cpus); break;
    case map_type::ringbuf: found = maps::check_ringbuf(definition, cpus); break;
    case map_type::prog_array: found = maps::check_prog_array(definition, cpus); break;
    case map_type::devmap:
    case map_type::devmap_hash: found = maps::check_devmap(definition, cpus); break;
    case map_type::cpumap: found = maps::check_cpumap(definition, cpus); break;
    case map_type::xskmap: found = maps::check_xskmap(definition, cpus); break;
    default:
        return maps::problem(EINVAL, "type", fmt::format("map type {} is unknown or not supported by sluice",
                                                         static_cast<std::uint32_t>(definition.type)));
    }
    if (found) {
        return found;
    }
    // bpf_obj_name_cpy(): BPF_OBJ_NAME_LEN (16) with its terminator; letters, digits, '_' and '.'.
    if (definition.name.size() >= 16) {
        return maps::problem(EINVAL, "name", "longer than 15 characters");
    }
    for (const char c : definition.name) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') {
            return maps::problem(EINVAL, "name", fmt::format("character '{}' is not a letter, digit, '_' or '.'", c));
        }
    }
    return std::nullopt;
}

namespace {

std::string_view errno_name(long errno_value) {
    switch (errno_value) {
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    case enotsupp: return "ENOTSUPP";
    default: return "EINVAL";
    }
}

} // namespace

expected<std::unique_ptr<map>> create_map(const map_definition& definition, unsigned cpus) {
    const auto describe = [&](long errno_value, std::string_view field, std::string_view reason) {
        return error{fmt::format("map '{}' ({}): {}: {} (the kernel fails with -{})", definition.name,
                                 to_string(definition.type), field, reason, errno_name(errno_value))};
    };
    if (const auto found = check_definition(definition, cpus)) {
        return describe(found->errno_value, found->field, found->reason);
    }
    try {
        switch (definition.type) {
        case map_type::array:
        case map_type::percpu_array: return maps::make_array(definition, cpus);
        case map_type::hash:
        case map_type::percpu_hash:
        case map_type::lru_hash:
        case map_type::lru_percpu_hash: return maps::make_hash(definition, cpus);
        case map_type::lpm_trie: return maps::make_lpm_trie(definition, cpus);
        case map_type::queue:
        case map_type::stack: return maps::make_queue_stack(definition, cpus);
        case map_type::ringbuf: return maps::make_ringbuf(definition, cpus);
        case map_type::prog_array: return maps::make_prog_array(definition, cpus);
        case map_type::devmap: return maps::make_devmap(definition, cpus);
        case map_type::devmap_hash: return maps::make_devmap_hash(definition, cpus);
        case map_type::cpumap: return maps::make_cpumap(definition, cpus);
        case map_type::xskmap: return maps::make_xskmap(definition, cpus);
        }
    } catch (const std::bad_alloc&) {
        return describe(ENOMEM, "max_entries", "not enough memory for the map's elements");
    } catch (const std::system_error& failure) {
        return describe(ENOMEM, "max_entries", failure.what());
    }
    return describe(EINVAL, "type", "not supported by sluice");
}

} // namespace sluice::ebpf
