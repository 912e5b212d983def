// BPF_MAP_TYPE_DEVMAP and BPF_MAP_TYPE_DEVMAP_HASH (the kernel's kernel/bpf/devmap.c): interfaces by index or by
// hashed key, the targets of bpf_redirect_map() towards ports, each entry optionally with an `xdp/devmap` program.
//
// Kernel behaviour copied (checked against the kernel by tests/ebpf/maps/redirect_maps_test.cpp):
// - creation: key 4 bytes, value 4 (ifindex) or 8 (ifindex + program), max_entries > 0, flags only NUMA_NODE,
//   RDONLY, WRONLY (-EINVAL otherwise); devmap_hash: max_entries <= 2^31. Programs may only read (the kernel sets
//   BPF_F_RDONLY_PROG itself).
// - devmap update: flags > BPF_EXIST -EINVAL, index out of range -E2BIG, BPF_NOEXIST -EEXIST (every slot exists);
//   ifindex 0 clears the slot (and then a program is -EINVAL); an unknown ifindex or a bad program -EINVAL.
//   Delete: out of range -EINVAL, else 0 even for an empty slot. get_next_key walks indexes as an array does.
// - devmap_hash update: flags > BPF_EXIST or ifindex 0 -EINVAL; BPF_NOEXIST on a present key -EEXIST (BPF_EXIST on
//   an absent key is accepted: the kernel does not check it); a new key beyond max_entries -E2BIG. Keys hash to
//   bucket key & (n_buckets - 1), n_buckets = max_entries rounded up to a power of two; a new or replaced entry goes
//   to the head of its bucket; get_next_key walks buckets in order and restarts from the first key when the given
//   key is absent. Delete of an absent key -ENOENT.
#include <bit>
#include <mutex>
#include <vector>

#include "ebpf/maps/redirect_array.hpp"

namespace sluice::ebpf::maps {
namespace {

struct devmap_value {
    std::uint32_t ifindex{};
    std::uint32_t program{};
};

map_definition read_only_for_programs(map_definition definition) {
    definition.map_flags |= map_flag::rdonly_prog; // "Lookup returns a pointer straight to dev->ifindex"
    return definition;
}

/// The resolution both kinds share: the interface must exist, the program (8-byte values only) must resolve.
class devmap_resolution {
public:
    void set(redirect_map::resolvers with) {
        std::lock_guard guard(_lock);
        _with = std::move(with);
    }

    /// The entry for `value`, or -EINVAL as __dev_map_alloc_node fails.
    long resolve(const devmap_value& value, std::uint32_t value_size, devmap_entry& out) {
        std::lock_guard guard(_lock);
        if (_with.interface && !_with.interface(value.ifindex)) {
            return -EINVAL;
        }
        out = devmap_entry{value.ifindex, 0, nullptr};
        if (value_size == sizeof(devmap_value) && names_program(value.program)) {
            const void* handle = _with.program ? _with.program(value.program) : nullptr;
            if (handle == nullptr) {
                return -EINVAL;
            }
            out.program_id = value.program;
            out.program = handle;
        }
        return 0;
    }

private:
    std::mutex _lock;
    redirect_map::resolvers _with;
};

devmap_value read_devmap_value(const void* value, std::uint32_t value_size) {
    devmap_value parsed;
    std::memcpy(&parsed, value, value_size); // 4 or 8 bytes; a 4-byte value has no program
    return parsed;
}

void write_devmap_value(void* out, const devmap_entry& entry, std::uint32_t value_size) {
    const devmap_value value{entry.ifindex, entry.program_id};
    std::memcpy(out, &value, value_size);
}

class devmap final : public redirect_array<devmap_entry, &devmap_entry::ifindex> {
public:
    devmap(const map_definition& definition, unsigned cpus)
        : redirect_array(read_only_for_programs(definition), cpus) {}

    void set_resolvers(resolvers with) override { _resolution.set(std::move(with)); }

protected:
    long sys_lookup(const void* key, void* value) override {
        const auto* entry = static_cast<const devmap_entry*>(lookup(key, 0));
        if (entry == nullptr) {
            return -ENOENT;
        }
        write_devmap_value(value, *entry, value_size());
        return 0;
    }

    // __dev_map_update_elem
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        const std::uint32_t index = array_index(key);
        if (const long failed = check_update(index, flags); failed != 0) {
            return failed;
        }
        if (flags == update_flag::noexist) {
            return -EEXIST;
        }
        const devmap_value parsed = read_devmap_value(value, value_size());
        if (parsed.ifindex == 0) {
            if (value_size() == sizeof(devmap_value) && names_program(parsed.program)) {
                return -EINVAL; // "can not specify fd if ifindex is 0"
            }
            publish(slot(index), devmap_entry{});
            return 0;
        }
        devmap_entry entry;
        if (const long failed = _resolution.resolve(parsed, value_size(), entry); failed != 0) {
            return failed;
        }
        publish(slot(index), entry);
        return 0;
    }

    void clear(devmap_entry& target) override { publish(target, devmap_entry{}); }

private:
    devmap_resolution _resolution;
};

class devmap_hash final : public redirect_map {
public:
    devmap_hash(const map_definition& definition, unsigned cpus)
        : redirect_map(read_only_for_programs(definition), cpus),
          _buckets(std::bit_ceil(std::max<std::uint32_t>(definition.max_entries, 1))),
          _nodes(std::size_t{definition.max_entries} + 1) {
        // One node more than entries: a replacement is linked before the node it replaces is freed.
        _free.reserve(_nodes.size());
        for (std::size_t i = _nodes.size(); i-- > 0;) {
            _free.push_back(&_nodes[i]);
        }
    }

    void set_resolvers(resolvers with) override { _resolution.set(std::move(with)); }

    void for_each_entry(void (*visit)(std::uint32_t, void*, void*), void* opaque) override {
        for (auto& bucket : _buckets) {
            for (node* at = bucket.load(std::memory_order_acquire); at != nullptr;
                 at = at->next.load(std::memory_order_acquire)) {
                visit(at->key, &at->entry, opaque);
            }
        }
    }

    // __dev_map_hash_lookup_elem
    void* lookup(const void* key, unsigned) override {
        node* found = find(array_index(key));
        return found != nullptr ? &found->entry : nullptr;
    }
    long update(const void*, const void*, std::uint64_t, unsigned) override { return -EINVAL; }
    long remove(const void*, unsigned) override { return -EINVAL; }

protected:
    long sys_lookup(const void* key, void* value) override {
        const node* found = find(array_index(key));
        if (found == nullptr) {
            return -ENOENT;
        }
        write_devmap_value(value, found->entry, value_size());
        return 0;
    }

    // __dev_map_hash_update_elem
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        const std::uint32_t index = array_index(key);
        const devmap_value parsed = read_devmap_value(value, value_size());
        if (flags > update_flag::exist || parsed.ifindex == 0) {
            return -EINVAL;
        }
        node* old = find(index);
        if (old != nullptr && flags == update_flag::noexist) {
            return -EEXIST;
        }
        devmap_entry entry;
        if (const long failed = _resolution.resolve(parsed, value_size(), entry); failed != 0) {
            return failed;
        }
        if (old == nullptr && _items >= max_entries()) {
            return -E2BIG;
        }
        node* fresh = _free.back();
        _free.pop_back();
        fresh->key = index;
        fresh->entry = entry;
        if (old != nullptr) {
            unlink(old);
        } else {
            ++_items;
        }
        auto& head = bucket_of(index);
        fresh->next.store(head.load(std::memory_order_relaxed), std::memory_order_relaxed);
        head.store(fresh, std::memory_order_release);
        return 0;
    }

    // dev_map_hash_delete_elem
    long sys_delete(const void* key) override {
        node* found = find(array_index(key));
        if (found == nullptr) {
            return -ENOENT;
        }
        unlink(found);
        --_items;
        return 0;
    }

    // dev_map_hash_get_next_key
    long sys_get_next_key(const void* key, void* next_key) override {
        std::size_t bucket = 0;
        if (key != nullptr) {
            const std::uint32_t index = array_index(key);
            if (const node* found = find(index); found != nullptr) {
                if (const node* next = found->next.load(std::memory_order_acquire); next != nullptr) {
                    std::memcpy(next_key, &next->key, 4);
                    return 0;
                }
                bucket = (index & (_buckets.size() - 1)) + 1;
            }
        }
        for (; bucket < _buckets.size(); ++bucket) {
            if (const node* first = _buckets[bucket].load(std::memory_order_acquire); first != nullptr) {
                std::memcpy(next_key, &first->key, 4);
                return 0;
            }
        }
        return -ENOENT;
    }

private:
    struct node {
        std::uint32_t key{};
        devmap_entry entry;
        std::atomic<node*> next{};
    };

    std::atomic<node*>& bucket_of(std::uint32_t key) { return _buckets[key & (_buckets.size() - 1)]; }

    node* find(std::uint32_t key) {
        for (node* at = bucket_of(key).load(std::memory_order_acquire); at != nullptr;
             at = at->next.load(std::memory_order_acquire)) {
            if (at->key == key) {
                return at;
            }
        }
        return nullptr;
    }

    // Readers standing on `target` keep following its next pointer; the node is reused only by a later update (the
    // kernel waits for an RCU grace period instead).
    void unlink(node* target) {
        std::atomic<node*>* link = &bucket_of(target->key);
        while (link->load(std::memory_order_relaxed) != target) {
            link = &link->load(std::memory_order_relaxed)->next;
        }
        link->store(target->next.load(std::memory_order_relaxed), std::memory_order_release);
        _free.push_back(target);
    }

    std::vector<std::atomic<node*>> _buckets;
    std::vector<node> _nodes;
    std::vector<node*> _free; ///< control plane only (serialised by the map's control lock)
    std::uint32_t _items{};
    devmap_resolution _resolution;
};

} // namespace

// dev_map_init_map
std::optional<definition_problem> check_devmap(const map_definition& definition, unsigned) {
    const redirect_shape shape{"must be 4 (a u32 index)",
                               "must be 4 (struct bpf_devmap_val's ifindex) or 8 (ifindex and a program id)", true,
                               map_flag::numa_node | map_flag::rdonly | map_flag::wronly};
    if (auto found = check_redirect_definition(definition, shape)) {
        return found;
    }
    if (definition.type == map_type::devmap_hash && definition.max_entries > (1U << 31)) {
        return problem(EINVAL, "max_entries", "a devmap_hash holds at most 2^31 entries");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_devmap(const map_definition& definition, unsigned cpus) {
    return std::make_unique<devmap>(definition, cpus);
}

std::unique_ptr<map> make_devmap_hash(const map_definition& definition, unsigned cpus) {
    return std::make_unique<devmap_hash>(definition, cpus);
}

} // namespace sluice::ebpf::maps
