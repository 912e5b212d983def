// eBPF maps with the Linux kernel's semantics: the same creation checks, flags, return codes and iteration order.
//
// A map has two faces.
//  - The data path, called by helpers from programs running on sluice workers: lookup() returns a pointer to the
//    value slot (for per-CPU maps the slot of the calling worker), update()/remove()/push()/pop()/peek() return 0 or
//    a negative errno exactly as the kernel's helpers do. Lookups take no lock: as with the kernel's preallocated
//    maps, elements come from a pool that lives as long as the map, so a reader may see a value that a concurrent
//    update overwrites (aligned 8-byte words are always written whole) but never freed memory. Calls passing the
//    same `cpu` must not run concurrently (one worker per cpu index); different cpus may run at the same time.
//  - The control plane, like the bpf() system call: lookup_elem() copies the value out (per-CPU maps: every cpu's
//    value, each rounded up to 8 bytes), update_elem(), delete_elem(), get_next_key(), lookup_and_delete_elem(),
//    freeze(), for_each(). Safe from any thread while programs run; control-plane calls on one map are serialised.
//
// Return codes are negative errno values (<cerrno>); `enotsupp` is the kernel-internal ENOTSUPP (524) that some
// paths return to user space. The number of per-CPU slots ("possible cpus" = sluice workers) is fixed at creation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "sluice/expected.hpp"

namespace sluice::ebpf {

/// Map kinds, numbered as the kernel's enum bpf_map_type.
enum class map_type : std::uint32_t {
    hash = 1,
    array = 2,
    prog_array = 3,
    percpu_hash = 5,
    percpu_array = 6,
    lru_hash = 9,
    lru_percpu_hash = 10,
    lpm_trie = 11,
    devmap = 14,
    cpumap = 16,
    xskmap = 17,
    queue = 22,
    stack = 23,
    devmap_hash = 25,
    ringbuf = 27,
};

std::string_view to_string(map_type type);

/// map_flags at creation (BPF_F_*).
namespace map_flag {
inline constexpr std::uint32_t no_prealloc = 1U << 0;    ///< BPF_F_NO_PREALLOC (required by lpm_trie)
inline constexpr std::uint32_t no_common_lru = 1U << 1;  ///< BPF_F_NO_COMMON_LRU: one LRU list per cpu
inline constexpr std::uint32_t numa_node = 1U << 2;      ///< BPF_F_NUMA_NODE: accepted, node ignored
inline constexpr std::uint32_t rdonly = 1U << 3;         ///< BPF_F_RDONLY: control plane may not write
inline constexpr std::uint32_t wronly = 1U << 4;         ///< BPF_F_WRONLY: control plane may not read
inline constexpr std::uint32_t zero_seed = 1U << 6;      ///< BPF_F_ZERO_SEED: hash seed 0, deterministic order
inline constexpr std::uint32_t rdonly_prog = 1U << 7;    ///< BPF_F_RDONLY_PROG: programs may not write (.rodata)
inline constexpr std::uint32_t wronly_prog = 1U << 8;    ///< BPF_F_WRONLY_PROG: programs may not read
inline constexpr std::uint32_t mmapable = 1U << 10;      ///< BPF_F_MMAPABLE: arrays only
inline constexpr std::uint32_t preserve_elems = 1U << 11; ///< BPF_F_PRESERVE_ELEMS: perf_event_array only
inline constexpr std::uint32_t inner_map = 1U << 12;     ///< BPF_F_INNER_MAP: arrays only
inline constexpr std::uint32_t access_mask = rdonly | wronly | rdonly_prog | wronly_prog;
} // namespace map_flag

/// Flags of update (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK).
namespace update_flag {
inline constexpr std::uint64_t any = 0;     ///< create or replace
inline constexpr std::uint64_t noexist = 1; ///< create only: -EEXIST if present
inline constexpr std::uint64_t exist = 2;   ///< replace only: -ENOENT if absent; queue/stack: overwrite oldest
inline constexpr std::uint64_t lock = 4;    ///< BPF_F_LOCK: needs a bpf_spin_lock in the value; not supported (-EINVAL)
} // namespace update_flag

inline constexpr long enotsupp = 524; ///< the kernel's ENOTSUPP, which has no user-space name

/// What a map is, as a program object or `sluice map create` describes it.
struct map_definition {
    map_type type{map_type::array};
    std::uint32_t key_size{};
    std::uint32_t value_size{};
    std::uint32_t max_entries{};
    std::uint32_t map_flags{};
    std::string name; ///< up to 15 characters of [A-Za-z0-9_.], as BPF_OBJ_NAME_LEN
};

/// Why the kernel would refuse a definition: its errno, the field to blame, and why.
struct definition_problem {
    long errno_value{};      ///< positive errno the kernel's BPF_MAP_CREATE fails with (EINVAL, E2BIG, ...)
    std::string field;       ///< "key_size", "value_size", "max_entries", "map_flags", "name", "type"
    std::string reason;
};

/// The kernel's map_create checks for `definition` (map_alloc_check and map_alloc of its kind).
std::optional<definition_problem> check_definition(const map_definition& definition, unsigned cpus);

class map {
public:
    virtual ~map() = default;
    map(const map&) = delete;
    map& operator=(const map&) = delete;

    const map_definition& definition() const { return _definition; }
    map_type type() const { return _definition.type; }
    std::uint32_t key_size() const { return _definition.key_size; }
    std::uint32_t value_size() const { return _definition.value_size; }
    std::uint32_t max_entries() const { return _definition.max_entries; }
    unsigned cpus() const { return _cpus; }
    bool is_percpu() const;

    // ---- data path (helpers) ----

    /// bpf_map_lookup_elem: the value slot (of `cpu` for per-CPU maps), or nullptr.
    virtual void* lookup(const void* key, unsigned cpu) = 0;
    /// bpf_map_update_elem: per-CPU maps write only `cpu`'s slot.
    virtual long update(const void* key, const void* value, std::uint64_t flags, unsigned cpu) = 0;
    /// bpf_map_delete_elem.
    virtual long remove(const void* key, unsigned cpu) = 0;
    /// bpf_map_push_elem / pop / peek: queue and stack only; -EINVAL elsewhere (the verifier refuses them).
    virtual long push(const void* value, std::uint64_t flags);
    virtual long pop(void* value);
    virtual long peek(void* value);

    // ---- control plane (the bpf() system call) ----

    /// Bytes lookup_elem() writes and update_elem() reads: value_size, or cpus * round_up(value_size, 8).
    std::size_t syscall_value_size() const;
    /// BPF_MAP_LOOKUP_ELEM. Queue and stack: peek, with key nullptr.
    long lookup_elem(const void* key, void* value);
    /// BPF_MAP_UPDATE_ELEM. Queue and stack: push, with key nullptr.
    long update_elem(const void* key, const void* value, std::uint64_t flags);
    /// BPF_MAP_DELETE_ELEM.
    long delete_elem(const void* key);
    /// BPF_MAP_GET_NEXT_KEY: key nullptr or absent -> first key; last key -> -ENOENT.
    long get_next_key(const void* key, void* next_key);
    /// BPF_MAP_LOOKUP_AND_DELETE_ELEM: queue/stack pop, hash kinds; -ENOTSUPP elsewhere.
    long lookup_and_delete_elem(const void* key, void* value);
    /// BPF_MAP_FREEZE: the control plane may no longer write (-EPERM); freezing again is -EPERM, as in the kernel.
    long freeze();
    bool frozen() const;
    /// What the verifier may treat as constant: BPF_F_RDONLY_PROG and frozen, as the kernel's bpf_map_is_rdonly.
    bool is_constant_for_programs() const;
    /// Every key with its syscall-layout value, in get_next_key order; the callback returns false to stop.
    /// Not a snapshot: concurrent updates may be seen or missed, as with a get_next_key loop.
    long for_each(const std::function<bool(std::span<const std::byte> key, std::span<const std::byte> value)>& visit);

protected:
    map(map_definition definition, unsigned cpus);

    // The kind-specific halves of the control-plane calls; permissions and flag checks are done by the caller,
    // which holds _control.
    virtual long sys_lookup(const void* key, void* value) = 0;
    virtual long sys_update(const void* key, const void* value, std::uint64_t flags) = 0;
    virtual long sys_delete(const void* key) = 0;
    virtual long sys_get_next_key(const void* key, void* next_key) = 0;
    virtual long sys_lookup_and_delete(const void* key, void* value);

private:
    map_definition _definition;
    unsigned _cpus;
    std::mutex _control;
    bool _frozen{};
};

/// array and percpu_array: values are contiguous, so the JIT may inline lookups:
/// value(cpu, index) = values_base() + cpu * cpu_stride() + index * value_stride().
class array_map : public map {
public:
    virtual std::byte* values_base() = 0;
    virtual std::size_t value_stride() const = 0; ///< round_up(value_size, 8)
    virtual std::size_t cpu_stride() const = 0;   ///< 0 for array

protected:
    using map::map;
};

/// prog_array: slots hold opaque program handles for bpf_tail_call. In the kernel the control plane writes a program
/// fd (4 bytes) and reads back a program id; here the 4-byte value is a program id that a resolver, installed by the
/// loader, turns into a handle (nullptr: no such program, -EBADF). The loader may also set handles directly.
class prog_array_map : public map {
public:
    using resolver = std::function<const void*(std::uint32_t id)>;
    using namer = std::function<std::uint32_t(const void* program)>;

    /// Installs how ids become handles (update_elem) and handles become ids (lookup_elem).
    virtual void set_resolver(resolver to_program, namer to_id) = 0;
    /// Sets slot `index` to `program` (nullptr clears it); -E2BIG if out of range.
    virtual long set(std::uint32_t index, const void* program) = 0;
    /// The tail call's read: the handle in `index`, or nullptr if empty or out of range. No lock.
    virtual const void* program(std::uint32_t index) const = 0;

protected:
    using map::map;
};

/// ringbuf: variable-length records, 8-byte header {u32 len (bit 31 busy, bit 30 discard); u32 pg_off}, each record
/// rounded up to 8 bytes, the data area mapped twice so records never split. Producers are serialised by a spinlock as
/// in the kernel; one consumer (the control plane) reads with consume().
class ringbuf_map : public map {
public:
    static constexpr std::uint64_t no_wakeup = 1;    ///< BPF_RB_NO_WAKEUP
    static constexpr std::uint64_t force_wakeup = 2; ///< BPF_RB_FORCE_WAKEUP
    static constexpr std::uint64_t avail_data = 0;   ///< BPF_RB_AVAIL_DATA
    static constexpr std::uint64_t ring_size = 1;    ///< BPF_RB_RING_SIZE
    static constexpr std::uint64_t cons_pos = 2;     ///< BPF_RB_CONS_POS
    static constexpr std::uint64_t prod_pos = 3;     ///< BPF_RB_PROD_POS
    static constexpr std::uint32_t header_size = 8;  ///< BPF_RINGBUF_HDR_SZ
    static constexpr std::uint32_t busy_bit = 1U << 31;
    static constexpr std::uint32_t discard_bit = 1U << 30;

    /// bpf_ringbuf_reserve: nullptr if flags != 0, too big, or no room.
    virtual void* reserve(std::uint64_t size, std::uint64_t flags) = 0;
    /// bpf_ringbuf_submit / bpf_ringbuf_discard of a reserve()d record.
    virtual void submit(void* sample, std::uint64_t flags) = 0;
    virtual void discard(void* sample, std::uint64_t flags) = 0;
    /// bpf_ringbuf_output: 0, -EINVAL (flags) or -EAGAIN (no room).
    virtual long output(const void* data, std::uint64_t size, std::uint64_t flags) = 0;
    /// bpf_ringbuf_query; unknown flags -> 0.
    virtual std::uint64_t query(std::uint64_t flags) const = 0;
    /// Consumer: hands committed records to `record` in order (discarded ones skipped) until the ring is empty, a
    /// record is still busy, or `record` returns a negative value. Returns the records handed over, or that value.
    virtual long consume(const std::function<int(std::span<const std::byte> record)>& record) = 0;
    /// Incremented on each wakeup the kernel would send (submit at the consumer position, or forced).
    virtual std::uint64_t wakeups() const = 0;

protected:
    using map::map;
};

/// The redirect maps (devmap, devmap_hash, cpumap, xskmap): what bpf_redirect_map() sends frames to. The data path's
/// lookup() returns a pointer to the entry below (the kernel's __*_map_lookup_elem), whose first bytes are what the
/// program and the control plane see as the value; the rest is resolved at update time, as the kernel resolves fds.
///
/// Program ids (the value's bpf_prog.fd on update, bpf_prog.id on lookup): the kernel takes a program fd > 0 and
/// gives back the program's id; sluice has no fds, so the field holds a program id that the resolver installed by
/// the data path (xdp::engine) turns into a handle, and the same id is read back. A value <= 0 (as a signed int) means
/// no program, as in the kernel. Without a resolver every program id is refused as the kernel refuses a bad fd.
///
/// Entries are updated in place, word by word (the kernel swaps RCU pointers): a data path reading an entry while the
/// control plane rewrites it may see a mix of the old and new entry's words, never freed memory.
struct devmap_entry {
    std::uint32_t ifindex{};    ///< bpf_devmap_val.ifindex
    std::uint32_t program_id{}; ///< bpf_devmap_val.bpf_prog.id (0: none)
    const void* program{};      ///< the `xdp/devmap` program to run before the frame is queued (nullptr: none)
};

struct cpumap_entry {
    std::uint32_t qsize{};      ///< bpf_cpumap_val.qsize: frames the target worker's queue may hold (0: no entry)
    std::uint32_t program_id{}; ///< bpf_cpumap_val.bpf_prog.id (0: none)
    const void* program{};      ///< the `xdp/cpumap` program to run on the target worker (nullptr: none)
};

/// What a program sees of an xskmap entry is struct bpf_xdp_sock { __u32 queue_id; }; the rest is sluice's.
struct xsk_entry {
    std::uint32_t queue_id{};  ///< bpf_xdp_sock.queue_id
    std::uint32_t socket_id{}; ///< the socket's id (the value the control plane wrote)
    void* socket{};            ///< the socket (xdp::xsk_socket), nullptr when the slot is empty
};

class redirect_map : public map {
public:
    /// Turns a program id into a handle: nullptr when there is no such program, or it is not attached where this map
    /// needs it (devmap: `xdp/devmap`, cpumap: `xdp/cpumap`), which the kernel refuses too.
    using program_resolver = std::function<const void*(std::uint32_t id)>;
    /// devmap: whether an ifindex names an interface (the kernel's dev_get_by_index); empty: every ifindex does.
    using interface_resolver = std::function<bool(std::uint32_t ifindex)>;
    /// xskmap: the socket with this id and the queue it is bound to; nullptr when there is none (-EBADF).
    using socket_resolver = std::function<void*(std::uint32_t id, std::uint32_t& queue_id)>;

    struct resolvers {
        program_resolver program;
        interface_resolver interface;
        socket_resolver socket;
    };
    virtual void set_resolvers(resolvers with) = 0;

    /// Every present entry, in get_next_key order, for broadcast (BPF_F_BROADCAST). No lock, no allocation.
    virtual void for_each_entry(void (*visit)(std::uint32_t key, void* entry, void* opaque), void* opaque) = 0;

protected:
    using map::map;
};

/// Creates a map with the kernel's checks; the error names the map, its kind and the offending field.
expected<std::unique_ptr<map>> create_map(const map_definition& definition, unsigned cpus);

} // namespace sluice::ebpf
