// The kernel's LRU for LRU hash maps (kernel/bpf/bpf_lru_list.c), transcribed so that eviction order matches.
//
// Nodes live on an active, an inactive or a free list. A lookup sets the node's "ref" bit; rotation moves referenced
// nodes to the head of the active list and unreferenced ones towards the inactive tail, where shrinking evicts them
// (calling back into the hash table to unlink the element). With the common LRU (the default) each cpu keeps a local
// free list, refilled from the global free list up to target_free nodes at a time, and a local pending list of nodes
// it handed out, flushed to the global lists on the next refill; a cpu out of nodes steals from the others. With
// BPF_F_NO_COMMON_LRU each cpu has its own lists and max_entries / cpus nodes.
//
// Differences from the kernel, all invisible to a map's user: locks are plain spinlocks (the kernel's rqspinlock can
// fail and then marks a node pending_free; ours never fails), the local free list is a stack under the local lock
// rather than a lockless llist, and the control plane acts as one extra cpu (index == cpus) with its own local list
// (common LRU) or as cpu 0 (per-cpu LRU), since a system call runs on some cpu in the kernel too.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {

struct lru_link {
    lru_link* prev{this};
    lru_link* next{this};
};

/// One per hash element; `link` first, so that a list's link is its node.
struct lru_node {
    lru_link link;
    lru_node* free_next{};              ///< the local free stack
    std::atomic<std::uint8_t> ref{};    ///< set by lookups, cleared by rotation
    std::atomic<std::uint8_t> pending_free{};
    std::atomic<std::uint8_t> type{};
    std::uint32_t cpu{};                ///< owning cpu: local pending list (common) or list (per-cpu LRU)
    std::uint32_t index{};              ///< the hash element this node belongs to

    void set_ref() {
        if (!ref.load(std::memory_order_relaxed)) {
            ref.store(1, std::memory_order_relaxed);
        }
    }
};

class lru {
public:
    /// Unlinks the node's element from the hash table if it is there (the kernel's del_from_htab).
    using delete_from_table = std::function<bool(lru_node& node)>;

    lru(bool percpu, unsigned cpus, delete_from_table remove);
    ~lru();
    lru(const lru&) = delete;
    lru& operator=(const lru&) = delete;

    /// Puts every node on the free list(s), in order, as bpf_lru_populate.
    void populate(std::span<lru_node*> nodes);
    /// A free node for `cpu` (cpus: the control plane), evicting if needed; nullptr if none at all.
    lru_node* pop_free(unsigned cpu);
    /// Gives back a node whose element has been unlinked (or was never linked).
    void push_free(lru_node* node);

private:
    struct list;
    struct local_list;

    void move_to_free(list& l, lru_node* node, lru_link* free_list, std::uint8_t target_type);
    void move_in(list& l, lru_node* node, std::uint8_t target_type);
    void move(list& l, lru_node* node, std::uint8_t target_type);
    void rotate_active(list& l);
    void rotate_inactive(list& l);
    void rotate(list& l);
    unsigned shrink_inactive(list& l, unsigned target, lru_link* free_list, std::uint8_t target_type);
    unsigned shrink(list& l, unsigned target, lru_link* free_list, std::uint8_t target_type);
    void flush_local(list& l, local_list& local);
    void pop_free_to_local(local_list& local);
    lru_node* pop_pending(local_list& local);
    lru_node* percpu_pop_free(unsigned cpu);
    lru_node* common_pop_free(unsigned cpu);

    bool _percpu;
    unsigned _cpus;
    delete_from_table _remove;
    unsigned _nr_scans;
    unsigned _target_free{1};
    std::unique_ptr<list> _common;
    std::vector<std::unique_ptr<list>> _percpu_lists;
    std::vector<std::unique_ptr<local_list>> _locals;
};

} // namespace sluice::ebpf::maps
