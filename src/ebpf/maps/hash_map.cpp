// BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH (the kernel's kernel/bpf/hashtab.c).
//
// Buckets are the kernel's hlist_nulls lists: each list ends in a "nulls" marker naming its bucket, so a lockless
// reader that followed an element recycled into another bucket notices and restarts. Elements come from a pool
// allocated at creation and never freed while the map lives (the kernel's preallocated maps; BPF_F_NO_PREALLOC is
// accepted and preallocates too, which only changes memory use). Updates hold the bucket's spinlock. As in the kernel:
//  - hash: an update links a new element and unlinks the old one, which becomes the updating cpu's spare element
//    (extra_elems), so a reader holding the old value sees it whole until that cpu's next update;
//  - per-CPU hash: an existing element's slot is overwritten in place;
//  - LRU hash: every update takes a node from the LRU first, which may evict another element even when the key
//    exists; lookups from programs set the node's ref bit, control-plane lookups do not.
// The bucket is jhash(key, seed) & (buckets - 1) with the kernel's jhash; the seed is random unless BPF_F_ZERO_SEED,
// which then gives the kernel's get_next_key order. The free list is one list under a lock where the kernel keeps
// per-cpu free lists: "full" (-E2BIG) means the same thing, only the lock's contention differs.
#include <bit>
#include <mutex>
#include <random>
#include <vector>

#include "ebpf/maps/lru_list.hpp"
#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

struct element {
    std::atomic<std::uintptr_t> next{}; ///< element* or nulls marker (bucket << 1 | 1)
    std::atomic<std::uint32_t> hash{};
    std::uint32_t index{};              ///< position in the pool: the per-CPU value slot
    element* free_next{};               ///< free list, apart from `next` which readers may still follow
    lru_node lru;
};

constexpr std::size_t element_header = round_up8(sizeof(element));

constexpr bool is_nulls(std::uintptr_t link) { return (link & 1) != 0; }
constexpr std::uintptr_t nulls(std::uint32_t bucket) { return (std::uintptr_t{bucket} << 1) | 1; }

struct bucket {
    std::atomic<std::uintptr_t> head{};
    spinlock lock;
};

class hash_table final : public map {
public:
    hash_table(const map_definition& definition, unsigned cpus, std::uint32_t entries)
        : map(definition, cpus),
          _percpu(definition.type == map_type::percpu_hash || definition.type == map_type::lru_percpu_hash),
          _lru(definition.type == map_type::lru_hash || definition.type == map_type::lru_percpu_hash),
          _entries(entries), _key_stride(round_up8(definition.key_size)), _value_stride(round_up8(definition.value_size)),
          _element_size(element_header + _key_stride + (_percpu ? 0 : _value_stride)),
          _buckets(std::bit_ceil(entries)) {
        if (!(definition.map_flags & map_flag::zero_seed)) {
            _seed = std::random_device{}();
        }
        for (std::uint32_t i = 0; i < _buckets.size(); ++i) {
            _buckets[i].head.store(nulls(i), std::memory_order_relaxed);
        }
        // A plain hash has a spare element per cpu and one for the control plane (htab_has_extra_elems).
        const std::size_t extras = (_percpu || _lru) ? 0 : cpus + 1;
        const std::size_t count = entries + extras;
        _pool.resize(count * _element_size / 8);
        if (_percpu) {
            _cpu_stride = (count * _value_stride + 63) & ~std::size_t{63};
            _percpu_values.resize(_cpu_stride * cpus / 8);
        }
        std::vector<lru_node*> nodes;
        for (std::size_t i = 0; i < count; ++i) {
            element* e = new (raw_element(i)) element{};
            e->index = static_cast<std::uint32_t>(i);
            e->lru.index = e->index;
            if (_lru) {
                nodes.push_back(&e->lru);
            } else if (i < entries) {
                e->free_next = _free;
                _free = e;
            } else {
                _extra.push_back(e);
            }
        }
        if (_lru) {
            _lru_list = std::make_unique<lru>(definition.map_flags & map_flag::no_common_lru, cpus,
                                              [this](lru_node& node) { return unlink_node(node); });
            _lru_list->populate(nodes);
        }
    }

    // ---- data path ----

    void* lookup(const void* key, unsigned cpu) override {
        element* e = find(key);
        if (e == nullptr) {
            return nullptr;
        }
        if (_lru) {
            e->lru.set_ref();
        }
        return _percpu ? percpu_value(e, cpu) : value_of(e);
    }

    long update(const void* key, const void* value, std::uint64_t flags, unsigned cpu) override {
        return update_on(key, value, flags, cpu, false);
    }

    long remove(const void* key, unsigned) override { return detach(key, nullptr); }

protected:
    long sys_lookup(const void* key, void* value) override {
        element* e = find(key);
        if (e == nullptr) {
            return -ENOENT;
        }
        copy_out(e, value);
        return 0;
    }

    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        return update_on(key, value, flags, cpus(), true);
    }

    long sys_delete(const void* key) override { return remove(key, cpus()); }

    // htab_map_get_next_key: the next element in the key's bucket, else the first of the following buckets.
    long sys_get_next_key(const void* key, void* next_key) override {
        std::size_t first_bucket = 0;
        if (key != nullptr) {
            const std::uint32_t hash = hash_of(key);
            if (element* e = find(key); e != nullptr) {
                const std::uintptr_t next = e->next.load(std::memory_order_acquire);
                if (!is_nulls(next)) {
                    std::memcpy(next_key, key_of(reinterpret_cast<element*>(next)), key_size());
                    return 0;
                }
                first_bucket = (hash & (_buckets.size() - 1)) + 1;
            }
        }
        for (std::size_t i = first_bucket; i < _buckets.size(); ++i) {
            const std::uintptr_t head = _buckets[i].head.load(std::memory_order_acquire);
            if (!is_nulls(head)) {
                std::memcpy(next_key, key_of(reinterpret_cast<element*>(head)), key_size());
                return 0;
            }
        }
        return -ENOENT;
    }

    long sys_lookup_and_delete(const void* key, void* value) override { return detach(key, value); }

private:
    /// Unlinks the element of `key` under its bucket's lock, copying its value out first when `value` is given,
    /// and returns it to the free list: 0, or -ENOENT.
    long detach(const void* key, void* value) {
        const std::uint32_t hash = hash_of(key);
        bucket& b = bucket_of(hash);
        element* removed = nullptr;
        {
            std::lock_guard guard(b.lock);
            removed = find_locked(b, hash, key);
            if (removed == nullptr) {
                return -ENOENT;
            }
            if (value != nullptr) {
                copy_out(removed, value);
            }
            unlink(b, removed);
        }
        release(removed);
        return 0;
    }

    std::byte* raw_element(std::size_t index) {
        return reinterpret_cast<std::byte*>(_pool.data()) + index * _element_size;
    }
    static std::byte* key_of(element* e) { return reinterpret_cast<std::byte*>(e) + element_header; }
    std::byte* value_of(element* e) const { return key_of(e) + _key_stride; }
    std::byte* percpu_value(element* e, unsigned cpu) {
        return reinterpret_cast<std::byte*>(_percpu_values.data()) + cpu * _cpu_stride + e->index * _value_stride;
    }
    std::uint32_t hash_of(const void* key) const { return jhash(key, key_size(), _seed); }
    bucket& bucket_of(std::uint32_t hash) { return _buckets[hash & (_buckets.size() - 1)]; }

    // lookup_nulls_elem_raw: lockless; restarts if the walk ended in another bucket's list.
    element* find(const void* key) {
        const std::uint32_t hash = hash_of(key);
        const std::uint32_t index = hash & static_cast<std::uint32_t>(_buckets.size() - 1);
        for (;;) {
            std::uintptr_t link = _buckets[index].head.load(std::memory_order_acquire);
            while (!is_nulls(link)) {
                auto* e = reinterpret_cast<element*>(link);
                if (e->hash.load(std::memory_order_relaxed) == hash && std::memcmp(key_of(e), key, key_size()) == 0) {
                    return e;
                }
                link = e->next.load(std::memory_order_acquire);
            }
            if ((link >> 1) == index) {
                return nullptr;
            }
        }
    }

    element* find_locked(bucket& b, std::uint32_t hash, const void* key) {
        for (std::uintptr_t link = b.head.load(std::memory_order_relaxed); !is_nulls(link);) {
            auto* e = reinterpret_cast<element*>(link);
            if (e->hash.load(std::memory_order_relaxed) == hash && std::memcmp(key_of(e), key, key_size()) == 0) {
                return e;
            }
            link = e->next.load(std::memory_order_relaxed);
        }
        return nullptr;
    }

    // hlist_nulls_add_head_rcu: readers find the new element before the old one it replaces.
    static void link_head(bucket& b, element* e) {
        e->next.store(b.head.load(std::memory_order_relaxed), std::memory_order_relaxed);
        b.head.store(reinterpret_cast<std::uintptr_t>(e), std::memory_order_release);
    }

    // hlist_nulls_del_rcu: the element keeps its `next`, so a reader standing on it walks on.
    static bool unlink(bucket& b, element* target) {
        std::atomic<std::uintptr_t>* slot = &b.head;
        for (std::uintptr_t link = slot->load(std::memory_order_relaxed); !is_nulls(link);
             link = slot->load(std::memory_order_relaxed)) {
            auto* e = reinterpret_cast<element*>(link);
            if (e == target) {
                slot->store(e->next.load(std::memory_order_relaxed), std::memory_order_release);
                return true;
            }
            slot = &e->next;
        }
        return false;
    }

    // htab_lru_map_delete_node: the LRU evicts this node's element if it is still linked.
    bool unlink_node(lru_node& node) {
        element* e = reinterpret_cast<element*>(raw_element(node.index));
        bucket& b = bucket_of(e->hash.load(std::memory_order_relaxed));
        std::lock_guard guard(b.lock);
        return unlink(b, e);
    }

    void release(element* e) {
        if (_lru) {
            _lru_list->push_free(&e->lru);
            return;
        }
        std::lock_guard guard(_free_lock);
        e->free_next = _free;
        _free = e;
    }

    element* take_free() {
        std::lock_guard guard(_free_lock);
        element* e = _free;
        if (e != nullptr) {
            _free = e->free_next;
        }
        return e;
    }

    void fill_key(element* e, const void* key, std::uint32_t hash) {
        std::memcpy(key_of(e), key, key_size());
        e->hash.store(hash, std::memory_order_relaxed);
    }

    // pcpu_copy_value / pcpu_init_value: all cpus from the caller's array, or one cpu (a new element: others zero).
    void write_percpu(element* e, const void* value, unsigned cpu, bool all_cpus, bool fresh) {
        const auto* in = static_cast<const std::byte*>(value);
        for (unsigned c = 0; c < cpus(); ++c) {
            if (all_cpus) { // copy_map_value_long: the whole 8-byte-rounded slot
                copy_value(percpu_value(e, c), in + c * _value_stride, _value_stride);
            } else if (c == cpu) {
                copy_value(percpu_value(e, c), value, value_size());
            } else if (fresh) {
                std::memset(percpu_value(e, c), 0, _value_stride);
            }
        }
    }

    void copy_out(element* e, void* value) {
        if (!_percpu) {
            read_value(value, value_of(e), value_size());
            return;
        }
        auto* out = static_cast<std::byte*>(value);
        for (unsigned c = 0; c < cpus(); ++c, out += _value_stride) {
            read_value(out, percpu_value(e, c), _value_stride);
        }
    }

    static long check_flags(element* old, std::uint64_t flags) {
        if (old != nullptr && (flags & ~update_flag::lock) == update_flag::noexist) {
            return -EEXIST;
        }
        if (old == nullptr && (flags & ~update_flag::lock) == update_flag::exist) {
            return -ENOENT;
        }
        return 0;
    }

    long update_on(const void* key, const void* value, std::uint64_t flags, unsigned cpu, bool all_cpus) {
        if (_lru) {
            return _percpu ? update_lru_percpu(key, value, flags, cpu, all_cpus) : update_lru(key, value, flags, cpu);
        }
        return _percpu ? update_percpu(key, value, flags, cpu, all_cpus) : update_plain(key, value, flags, cpu);
    }

    // htab_map_update_elem
    long update_plain(const void* key, const void* value, std::uint64_t flags, unsigned cpu) {
        if ((flags & ~update_flag::lock) > update_flag::exist || (flags & update_flag::lock)) {
            return -EINVAL; // unknown flags; BPF_F_LOCK without a bpf_spin_lock in the value
        }
        const std::uint32_t hash = hash_of(key);
        bucket& b = bucket_of(hash);
        std::lock_guard guard(b.lock);
        element* old = find_locked(b, hash, key);
        if (const long status = check_flags(old, flags); status != 0) {
            return status;
        }
        element* fresh = nullptr;
        if (old != nullptr) {
            fresh = _extra[cpu]; // the old element becomes this cpu's spare: readers may still hold it
            _extra[cpu] = old;
        } else {
            fresh = take_free();
            if (fresh == nullptr) {
                return -E2BIG;
            }
        }
        fill_key(fresh, key, hash);
        copy_value(value_of(fresh), value, value_size());
        link_head(b, fresh);
        if (old != nullptr) {
            unlink(b, old);
        }
        return 0;
    }

    // __htab_percpu_map_update_elem
    long update_percpu(const void* key, const void* value, std::uint64_t flags, unsigned cpu, bool all_cpus) {
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t hash = hash_of(key);
        bucket& b = bucket_of(hash);
        std::lock_guard guard(b.lock);
        element* old = find_locked(b, hash, key);
        if (const long status = check_flags(old, flags); status != 0) {
            return status;
        }
        if (old != nullptr) {
            write_percpu(old, value, cpu, all_cpus, false);
            return 0;
        }
        element* fresh = take_free();
        if (fresh == nullptr) {
            return -E2BIG;
        }
        fill_key(fresh, key, hash);
        write_percpu(fresh, value, cpu, all_cpus, true);
        link_head(b, fresh);
        return 0;
    }

    // htab_lru_map_update_elem: the node is taken before the bucket lock, since evicting needs bucket locks.
    long update_lru(const void* key, const void* value, std::uint64_t flags, unsigned cpu) {
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t hash = hash_of(key);
        lru_node* node = _lru_list->pop_free(cpu);
        if (node == nullptr) {
            return -ENOMEM;
        }
        element* fresh = reinterpret_cast<element*>(raw_element(node->index));
        fill_key(fresh, key, hash);
        copy_value(value_of(fresh), value, value_size());
        bucket& b = bucket_of(hash);
        element* old = nullptr;
        long status = 0;
        {
            std::lock_guard guard(b.lock);
            old = find_locked(b, hash, key);
            status = check_flags(old, flags);
            if (status == 0) {
                link_head(b, fresh);
                if (old != nullptr) {
                    fresh->lru.set_ref();
                    unlink(b, old);
                }
            }
        }
        if (status != 0) {
            _lru_list->push_free(&fresh->lru);
        } else if (old != nullptr) {
            _lru_list->push_free(&old->lru);
        }
        return status;
    }

    // htab_lru_percpu_map_update_elem: BPF_EXIST needs no new node; an existing element is updated in place.
    long update_lru_percpu(const void* key, const void* value, std::uint64_t flags, unsigned cpu, bool all_cpus) {
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t hash = hash_of(key);
        element* fresh = nullptr;
        if (flags != update_flag::exist) {
            lru_node* node = _lru_list->pop_free(cpu);
            if (node == nullptr) {
                return -ENOMEM;
            }
            fresh = reinterpret_cast<element*>(raw_element(node->index));
        }
        bucket& b = bucket_of(hash);
        long status = 0;
        {
            std::lock_guard guard(b.lock);
            element* old = find_locked(b, hash, key);
            status = check_flags(old, flags);
            if (status == 0) {
                if (old != nullptr) {
                    old->lru.set_ref();
                    write_percpu(old, value, cpu, all_cpus, false);
                } else {
                    fill_key(fresh, key, hash);
                    write_percpu(fresh, value, cpu, all_cpus, true);
                    link_head(b, fresh);
                    fresh = nullptr;
                }
            }
        }
        if (fresh != nullptr) {
            _lru_list->push_free(&fresh->lru);
        }
        return status;
    }

    bool _percpu;
    bool _lru;
    std::uint32_t _entries;
    std::uint32_t _seed{};
    std::size_t _key_stride;
    std::size_t _value_stride;
    std::size_t _element_size;
    std::size_t _cpu_stride{};
    std::vector<bucket> _buckets;
    std::vector<std::uint64_t> _pool;          ///< elements, 8-byte aligned
    std::vector<std::uint64_t> _percpu_values; ///< [cpu][element] for per-CPU kinds
    spinlock _free_lock;
    element* _free{};
    std::vector<element*> _extra;              ///< spare element per cpu, then the control plane's
    std::unique_ptr<lru> _lru_list;
};

/// max_entries after the kernel's adjustment: with per-cpu LRU lists, a multiple of the cpus.
std::uint64_t effective_entries(const map_definition& definition, unsigned cpus) {
    std::uint64_t entries = definition.max_entries;
    if (definition.map_flags & map_flag::no_common_lru) {
        entries = (entries + cpus - 1) / cpus * cpus;
        if (entries > UINT32_MAX) { // roundup() overflowed in the kernel's u32: it rounds down instead
            entries = definition.max_entries / cpus * cpus;
        }
    }
    return entries;
}

} // namespace

std::optional<definition_problem> check_hash(const map_definition& definition, unsigned cpus) {
    const bool percpu = definition.type == map_type::percpu_hash || definition.type == map_type::lru_percpu_hash;
    const bool lru = definition.type == map_type::lru_hash || definition.type == map_type::lru_percpu_hash;
    const std::uint32_t flags = definition.map_flags;
    const std::uint32_t allowed = map_flag::no_prealloc | map_flag::no_common_lru | map_flag::numa_node |
                                  map_flag::access_mask | map_flag::zero_seed;
    if (auto found = check_flags_allowed(flags, allowed)) {
        return found;
    }
    if (!lru && (flags & map_flag::no_common_lru)) {
        return problem(EINVAL, "map_flags", "BPF_F_NO_COMMON_LRU is for LRU hashes only");
    }
    if (lru && (flags & map_flag::no_prealloc)) {
        return problem(enotsupp, "map_flags", "LRU hashes are always preallocated: BPF_F_NO_PREALLOC is not supported");
    }
    if ((flags & map_flag::numa_node) && (percpu || (flags & map_flag::no_common_lru))) {
        return problem(EINVAL, "map_flags", "BPF_F_NUMA_NODE is not allowed with per-CPU values or LRU lists");
    }
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size == 0) {
        return problem(EINVAL, "key_size", "must be at least 1");
    }
    if (definition.value_size == 0) {
        return problem(EINVAL, "value_size", "must be at least 1");
    }
    if (std::uint64_t{definition.key_size} + definition.value_size >= kmalloc_max_size - element_header) {
        return problem(E2BIG, "value_size", "key_size + value_size must stay below 4 MiB (KMALLOC_MAX_SIZE)");
    }
    if (percpu && round_up8(definition.value_size) > pcpu_min_unit_size) {
        return problem(E2BIG, "value_size", "a per-CPU value is at most 32768 bytes (PCPU_MIN_UNIT_SIZE)");
    }
    const std::uint64_t entries = effective_entries(definition, cpus);
    // htab_map_alloc: the bucket array must stay below 4 GiB (16-byte buckets).
    if (entries == 0 || std::bit_ceil(entries) > (std::uint64_t{UINT32_MAX} / 16)) {
        return problem(E2BIG, "max_entries", "too many entries for the bucket array");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_hash(const map_definition& definition, unsigned cpus) {
    // As the kernel, the map reports the adjusted max_entries.
    map_definition adjusted = definition;
    adjusted.max_entries = static_cast<std::uint32_t>(effective_entries(definition, cpus));
    return std::make_unique<hash_table>(adjusted, cpus, adjusted.max_entries);
}

} // namespace sluice::ebpf::maps
