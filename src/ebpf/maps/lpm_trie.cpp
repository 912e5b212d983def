// BPF_MAP_TYPE_LPM_TRIE (the kernel's kernel/bpf/lpm_trie.c): longest-prefix match over struct bpf_lpm_trie_key_u8
// {u32 prefixlen, host order; u8 data[key_size - 4], network order, most significant bit first}.
//
// The same trie as the kernel: a binary trie whose nodes hold a prefix; intermediate nodes (flag IM) join two
// subtrees and carry no value; every intermediate node has two children. Lookups (from programs and from the control
// plane, which also does longest-prefix match) walk without a lock; updates and deletes hold one spinlock and publish
// child pointers with release stores, as the kernel's rcu_assign_pointer. The kernel frees nodes after an RCU grace
// period; here nodes come from chunks that live as long as the map, and freed nodes are reused oldest first, so a
// lockless reader never touches freed memory but, racing with deletes, may (as with a recycled hash element) read a
// node reused since it stepped on it. A full trie returns -ENOSPC, as the kernel's trie_check_add_elem.
#include <algorithm>
#include <bit>
#include <mutex>
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

constexpr std::uint32_t flag_intermediate = 1; // LPM_TREE_NODE_FLAG_IM

struct trie_node {
    std::atomic<trie_node*> child[2]{};
    std::atomic<std::uint32_t> flags{};
    std::uint32_t prefixlen{};
    trie_node* free_next{};
};

constexpr std::size_t node_header = round_up8(sizeof(trie_node));
constexpr std::size_t nodes_per_chunk = 256;

class lpm_trie final : public map {
public:
    lpm_trie(const map_definition& definition, unsigned cpus)
        : map(definition, cpus), _data_size(definition.key_size - 4), _max_prefixlen(_data_size * 8),
          _node_size(node_header + round_up8(_data_size) + round_up8(definition.value_size)) {}

    void* lookup(const void* key, unsigned) override {
        trie_node* found = match(key);
        return found != nullptr ? value_of(found) : nullptr;
    }

    // trie_update_elem
    long update(const void* key, const void* value, std::uint64_t flags, unsigned) override {
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t prefixlen = prefixlen_of(key);
        if (prefixlen > _max_prefixlen) {
            return -EINVAL;
        }
        const std::uint8_t* data = data_of(key);
        std::lock_guard guard(_lock);
        trie_node* fresh = allocate();
        if (fresh == nullptr) {
            return -ENOMEM;
        }
        fresh->prefixlen = prefixlen;
        std::memcpy(data_of(fresh), data, _data_size);
        copy_value(value_of(fresh), value, value_size());

        std::atomic<trie_node*>* slot = &_root;
        trie_node* node = nullptr;
        std::uint32_t matched = 0;
        while ((node = slot->load(std::memory_order_relaxed)) != nullptr) {
            matched = longest_prefix_match(node, data, prefixlen);
            if (node->prefixlen != matched || node->prefixlen == prefixlen) {
                break;
            }
            slot = &node->child[extract_bit(data, node->prefixlen)];
        }
        const auto fail = [&](long status) {
            release(fresh);
            return status;
        };
        if (node == nullptr) { // an empty slot: attach there
            if (const long status = check_add(flags); status != 0) {
                return fail(status);
            }
            slot->store(fresh, std::memory_order_release);
            return 0;
        }
        if (node->prefixlen == matched) { // the same prefix: replace the node
            if (!(node->flags.load(std::memory_order_relaxed) & flag_intermediate)) {
                if (flags == update_flag::noexist) {
                    return fail(-EEXIST);
                }
            } else if (const long status = check_add(flags); status != 0) {
                return fail(status);
            }
            fresh->child[0].store(node->child[0].load(std::memory_order_relaxed), std::memory_order_relaxed);
            fresh->child[1].store(node->child[1].load(std::memory_order_relaxed), std::memory_order_relaxed);
            slot->store(fresh, std::memory_order_release);
            release(node);
            return 0;
        }
        if (const long status = check_add(flags); status != 0) {
            return fail(status);
        }
        if (matched == prefixlen) { // the new prefix covers the node: insert it above
            fresh->child[extract_bit(data_of(node), matched)].store(node, std::memory_order_relaxed);
            slot->store(fresh, std::memory_order_release);
            return 0;
        }
        trie_node* joint = allocate();
        if (joint == nullptr) {
            --_entries;
            return fail(-ENOMEM);
        }
        joint->prefixlen = matched;
        joint->flags.store(flag_intermediate, std::memory_order_relaxed);
        std::memcpy(data_of(joint), data_of(node), _data_size);
        const int bit = extract_bit(data, matched);
        joint->child[bit].store(fresh, std::memory_order_relaxed);
        joint->child[1 - bit].store(node, std::memory_order_relaxed);
        slot->store(joint, std::memory_order_release);
        return 0;
    }

    // trie_delete_elem
    long remove(const void* key, unsigned) override {
        const std::uint32_t prefixlen = prefixlen_of(key);
        if (prefixlen > _max_prefixlen) {
            return -EINVAL;
        }
        const std::uint8_t* data = data_of(key);
        std::lock_guard guard(_lock);
        std::atomic<trie_node*>* trim = &_root;
        std::atomic<trie_node*>* trim2 = trim;
        trie_node* parent = nullptr;
        trie_node* node = nullptr;
        std::uint32_t matched = 0;
        while ((node = trim->load(std::memory_order_relaxed)) != nullptr) {
            matched = longest_prefix_match(node, data, prefixlen);
            if (node->prefixlen != matched || node->prefixlen == prefixlen) {
                break;
            }
            parent = node;
            trim2 = trim;
            trim = &node->child[extract_bit(data, node->prefixlen)];
        }
        if (node == nullptr || node->prefixlen != prefixlen || node->prefixlen != matched ||
            (node->flags.load(std::memory_order_relaxed) & flag_intermediate)) {
            return -ENOENT;
        }
        --_entries;
        trie_node* left = node->child[0].load(std::memory_order_relaxed);
        trie_node* right = node->child[1].load(std::memory_order_relaxed);
        if (left != nullptr && right != nullptr) { // two children: it becomes an intermediate node
            node->flags.fetch_or(flag_intermediate, std::memory_order_release);
            return 0;
        }
        // A leaf under an intermediate parent: the parent goes too, its other child takes its place.
        if (parent != nullptr && (parent->flags.load(std::memory_order_relaxed) & flag_intermediate) &&
            left == nullptr && right == nullptr) {
            const bool is_left = parent->child[0].load(std::memory_order_relaxed) == node;
            trim2->store(parent->child[is_left ? 1 : 0].load(std::memory_order_relaxed), std::memory_order_release);
            release(parent);
            release(node);
            return 0;
        }
        trim->store(left != nullptr ? left : right, std::memory_order_release);
        release(node);
        return 0;
    }

protected:
    long sys_lookup(const void* key, void* value) override {
        trie_node* found = match(key);
        if (found == nullptr) {
            return -ENOENT;
        }
        read_value(value, value_of(found), value_size());
        return 0;
    }

    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        return update(key, value, flags, 0);
    }

    long sys_delete(const void* key) override { return remove(key, 0); }

    // trie_get_next_key: postorder, so more specific prefixes come before the prefixes covering them.
    long sys_get_next_key(const void* key, void* next_key) override {
        std::lock_guard guard(_lock); // the kernel walks under RCU; the control plane may as well not race deletes
        trie_node* search_root = _root.load(std::memory_order_acquire);
        if (search_root == nullptr) {
            return -ENOENT;
        }
        trie_node* next = nullptr;
        if (key != nullptr && prefixlen_of(key) <= _max_prefixlen) {
            const std::uint32_t prefixlen = prefixlen_of(key);
            const std::uint8_t* data = data_of(key);
            std::vector<trie_node*> stack;
            trie_node* node = search_root;
            std::uint32_t matched = 0;
            while (node != nullptr) {
                stack.push_back(node);
                matched = longest_prefix_match(node, data, prefixlen);
                if (node->prefixlen != matched || node->prefixlen == prefixlen) {
                    break;
                }
                node = node->child[extract_bit(data, node->prefixlen)].load(std::memory_order_acquire);
            }
            if (node != nullptr && node->prefixlen == matched &&
                !(node->flags.load(std::memory_order_relaxed) & flag_intermediate)) {
                node = stack.back();
                search_root = nullptr;
                while (stack.size() > 1) {
                    trie_node* parent = stack[stack.size() - 2];
                    if (parent->child[0].load(std::memory_order_acquire) == node) {
                        search_root = parent->child[1].load(std::memory_order_acquire);
                        if (search_root != nullptr) {
                            break;
                        }
                    }
                    if (!(parent->flags.load(std::memory_order_relaxed) & flag_intermediate)) {
                        next = parent;
                        break;
                    }
                    node = parent;
                    stack.pop_back();
                }
                if (next == nullptr && search_root == nullptr) {
                    return -ENOENT;
                }
            }
        }
        if (next == nullptr) { // the leftmost non-intermediate node under search_root
            for (trie_node* node = search_root; node != nullptr;) {
                if (node->flags.load(std::memory_order_relaxed) & flag_intermediate) {
                    node = node->child[0].load(std::memory_order_acquire);
                } else {
                    next = node;
                    node = node->child[0].load(std::memory_order_acquire);
                    if (node == nullptr) {
                        node = next->child[1].load(std::memory_order_acquire);
                    }
                }
            }
        }
        const std::uint32_t prefixlen = next->prefixlen;
        std::memcpy(next_key, &prefixlen, 4);
        std::memcpy(static_cast<std::byte*>(next_key) + 4, data_of(next), _data_size);
        return 0;
    }

private:
    static std::uint32_t prefixlen_of(const void* key) {
        std::uint32_t prefixlen;
        std::memcpy(&prefixlen, key, 4);
        return prefixlen;
    }
    static const std::uint8_t* data_of(const void* key) { return static_cast<const std::uint8_t*>(key) + 4; }
    static std::uint8_t* data_of(trie_node* node) { return reinterpret_cast<std::uint8_t*>(node) + node_header; }
    std::byte* value_of(trie_node* node) const {
        return reinterpret_cast<std::byte*>(node) + node_header + round_up8(_data_size);
    }

    static int extract_bit(const std::uint8_t* data, std::uint32_t index) {
        return (data[index / 8] >> (7 - (index % 8))) & 1;
    }

    // longest_prefix_match: common leading bits of node and key, at most min(node, key) prefix lengths.
    std::uint32_t longest_prefix_match(trie_node* node, const std::uint8_t* data, std::uint32_t prefixlen) const {
        const std::uint32_t limit = std::min(node->prefixlen, prefixlen);
        const std::uint8_t* node_data = data_of(node);
        std::uint32_t matched = 0;
        for (std::uint32_t i = 0; i < _data_size; ++i) {
            const auto difference = static_cast<std::uint8_t>(node_data[i] ^ data[i]);
            const auto bits = static_cast<std::uint32_t>(std::countl_zero(difference)); // 8 - fls()
            matched += bits;
            if (matched >= limit) {
                return limit;
            }
            if (bits < 8) {
                break;
            }
        }
        return matched;
    }

    // trie_lookup_elem: the deepest non-intermediate node whose whole prefix matches.
    trie_node* match(const void* key) {
        const std::uint8_t* data = data_of(key);
        const std::uint32_t prefixlen = prefixlen_of(key);
        if (prefixlen > _max_prefixlen) {
            return nullptr;
        }
        trie_node* found = nullptr;
        for (trie_node* node = _root.load(std::memory_order_acquire); node != nullptr;) {
            const std::uint32_t matched = longest_prefix_match(node, data, prefixlen);
            if (matched == _max_prefixlen) {
                return node;
            }
            if (matched < node->prefixlen) {
                break;
            }
            if (!(node->flags.load(std::memory_order_acquire) & flag_intermediate)) {
                found = node;
            }
            node = node->child[extract_bit(data, node->prefixlen)].load(std::memory_order_acquire);
        }
        return found;
    }

    long check_add(std::uint64_t flags) { // trie_check_add_elem
        if (flags == update_flag::exist) {
            return -ENOENT;
        }
        if (_entries == max_entries()) {
            return -ENOSPC;
        }
        ++_entries;
        return 0;
    }

    trie_node* allocate() {
        trie_node* node = _free_head;
        if (node != nullptr) {
            _free_head = node->free_next;
            if (_free_head == nullptr) {
                _free_tail = nullptr;
            }
        } else {
            if (_chunk_used == nodes_per_chunk || _chunks.empty()) {
                try {
                    _chunks.push_back(std::make_unique<std::uint64_t[]>(nodes_per_chunk * _node_size / 8));
                } catch (const std::bad_alloc&) {
                    return nullptr;
                }
                _chunk_used = 0;
            }
            node = reinterpret_cast<trie_node*>(_chunks.back().get() + _chunk_used * _node_size / 8);
            ++_chunk_used;
        }
        node->child[0].store(nullptr, std::memory_order_relaxed);
        node->child[1].store(nullptr, std::memory_order_relaxed);
        node->flags.store(0, std::memory_order_relaxed);
        node->free_next = nullptr;
        return node;
    }

    void release(trie_node* node) { // to the tail: reused as late as possible
        node->free_next = nullptr;
        if (_free_tail != nullptr) {
            _free_tail->free_next = node;
        } else {
            _free_head = node;
        }
        _free_tail = node;
    }

    std::uint32_t _data_size;
    std::uint32_t _max_prefixlen;
    std::size_t _node_size;
    std::atomic<trie_node*> _root{};
    std::uint32_t _entries{};
    spinlock _lock;
    std::vector<std::unique_ptr<std::uint64_t[]>> _chunks;
    std::size_t _chunk_used{};
    trie_node* _free_head{};
    trie_node* _free_tail{};
};

} // namespace

std::optional<definition_problem> check_lpm_trie(const map_definition& definition, unsigned) {
    constexpr std::uint32_t data_size_max = 256;
    const std::uint64_t value_size_max = kmalloc_max_size - data_size_max - node_header;
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (!(definition.map_flags & map_flag::no_prealloc)) {
        return problem(EINVAL, "map_flags", "an LPM trie needs BPF_F_NO_PREALLOC");
    }
    if (auto found =
            check_flags_allowed(definition.map_flags, map_flag::no_prealloc | map_flag::numa_node | map_flag::access_mask)) {
        return found;
    }
    if (definition.key_size < 4 + 1 || definition.key_size > 4 + data_size_max) {
        return problem(EINVAL, "key_size", "must be 4 (prefixlen) + 1 to 256 bytes of data");
    }
    if (definition.value_size < 1 || definition.value_size > value_size_max) {
        return problem(EINVAL, "value_size", "must be at least 1 and below 4 MiB");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_lpm_trie(const map_definition& definition, unsigned cpus) {
    return std::make_unique<lpm_trie>(definition, cpus);
}

} // namespace sluice::ebpf::maps
