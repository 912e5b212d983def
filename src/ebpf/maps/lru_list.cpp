// The kernel's LRU, function by function (bpf_lru_list.c); the names say which kernel function each one is.
#include "ebpf/maps/lru_list.hpp"

#include <algorithm>
#include <mutex>
#include <type_traits>

namespace sluice::ebpf::maps {
namespace {

static_assert(std::is_standard_layout_v<lru_node>, "a list link must convert to its node");

// enum bpf_lru_list_type
constexpr std::uint8_t list_active = 0;
constexpr std::uint8_t list_inactive = 1;
constexpr std::uint8_t list_free = 2;
constexpr std::uint8_t local_free = 3;
constexpr std::uint8_t local_pending = 4;
constexpr unsigned counted_lists = 2; // NR_BPF_LRU_LIST_COUNT

constexpr unsigned local_free_target = 128; // LOCAL_FREE_TARGET, LOCAL_NR_SCANS
constexpr unsigned percpu_free_target = 4;  // PERCPU_FREE_TARGET, PERCPU_NR_SCANS

lru_node* node_of(lru_link* link) { return reinterpret_cast<lru_node*>(link); }

void list_del(lru_link* link) {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link;
    link->next = link;
}

void list_add(lru_link* link, lru_link* head) { // after head: the new first entry
    link->next = head->next;
    link->prev = head;
    head->next->prev = link;
    head->next = link;
}

void list_move(lru_link* link, lru_link* head) {
    list_del(link);
    list_add(link, head);
}

bool list_empty(const lru_link* head) { return head->next == head; }

} // namespace

struct lru::list {
    lru_link lists[3];
    unsigned counts[counted_lists]{};
    lru_link* next_inactive_rotation{&lists[list_inactive]};
    spinlock lock;
};

struct lru::local_list {
    lru_link pending;
    lru_node* free_top{};
    unsigned next_steal{};
    spinlock lock;

    void push(lru_node* node) {
        node->free_next = free_top;
        free_top = node;
    }
    lru_node* pop() {
        lru_node* node = free_top;
        if (node != nullptr) {
            free_top = node->free_next;
        }
        return node;
    }
};

lru::lru(bool percpu, unsigned cpus, delete_from_table remove)
    : _percpu(percpu), _cpus(cpus), _remove(std::move(remove)),
      _nr_scans(percpu ? percpu_free_target : local_free_target) {
    if (percpu) {
        for (unsigned cpu = 0; cpu < cpus; ++cpu) {
            _percpu_lists.push_back(std::make_unique<list>());
        }
    } else {
        _common = std::make_unique<list>();
        for (unsigned cpu = 0; cpu <= cpus; ++cpu) { // + the control plane
            _locals.push_back(std::make_unique<local_list>());
            _locals.back()->next_steal = cpu;
        }
    }
}

lru::~lru() = default;

void lru::populate(std::span<lru_node*> nodes) {
    if (!_percpu) {
        for (lru_node* node : nodes) {
            node->type.store(list_free, std::memory_order_relaxed);
            node->pending_free.store(0, std::memory_order_relaxed);
            node->ref.store(0, std::memory_order_relaxed);
            list_add(&node->link, &_common->lists[list_free]);
        }
        const auto per_cpu = static_cast<unsigned>(nodes.size() / _cpus / 2);
        _target_free = std::clamp(per_cpu, 1U, local_free_target);
        return;
    }
    const std::size_t per_cpu = nodes.size() / _cpus;
    std::size_t i = 0;
    for (unsigned cpu = 0; cpu < _cpus && i < nodes.size(); ++cpu) {
        do {
            lru_node* node = nodes[i];
            node->cpu = cpu;
            node->type.store(list_free, std::memory_order_relaxed);
            node->pending_free.store(0, std::memory_order_relaxed);
            node->ref.store(0, std::memory_order_relaxed);
            list_add(&node->link, &_percpu_lists[cpu]->lists[list_free]);
            ++i;
        } while (i < nodes.size() && i % per_cpu != 0);
    }
}

// __bpf_lru_node_move_to_free
void lru::move_to_free(list& l, lru_node* node, lru_link* free_list, std::uint8_t target_type) {
    if (&node->link == l.next_inactive_rotation) {
        l.next_inactive_rotation = l.next_inactive_rotation->prev;
    }
    const std::uint8_t type = node->type.load(std::memory_order_relaxed);
    if (type < counted_lists) {
        --l.counts[type];
    }
    node->type.store(target_type, std::memory_order_relaxed);
    node->pending_free.store(0, std::memory_order_relaxed);
    list_move(&node->link, free_list);
}

// __bpf_lru_node_move_in: from a local pending list into the global lists.
void lru::move_in(list& l, lru_node* node, std::uint8_t target_type) {
    if (target_type < counted_lists) {
        ++l.counts[target_type];
    }
    node->type.store(target_type, std::memory_order_relaxed);
    node->ref.store(0, std::memory_order_relaxed);
    node->pending_free.store(0, std::memory_order_relaxed);
    list_move(&node->link, &l.lists[target_type]);
}

// __bpf_lru_node_move
void lru::move(list& l, lru_node* node, std::uint8_t target_type) {
    const std::uint8_t type = node->type.load(std::memory_order_relaxed);
    if (type != target_type) {
        if (type < counted_lists) {
            --l.counts[type];
        }
        if (target_type < counted_lists) {
            ++l.counts[target_type];
        }
        node->type.store(target_type, std::memory_order_relaxed);
    }
    node->ref.store(0, std::memory_order_relaxed);
    if (&node->link == l.next_inactive_rotation) {
        l.next_inactive_rotation = l.next_inactive_rotation->prev;
    }
    list_move(&node->link, &l.lists[target_type]);
}

// __bpf_lru_list_rotate_active: from the tail, referenced nodes go back to the active head, the others to the
// inactive head; at most nr_scans nodes.
void lru::rotate_active(list& l) {
    lru_link* active = &l.lists[list_active];
    lru_link* first = active->next;
    unsigned i = 0;
    for (lru_link *link = active->prev, *previous = link->prev; link != active; link = previous, previous = link->prev) {
        lru_node* node = node_of(link);
        move(l, node, node->ref.load(std::memory_order_relaxed) ? list_active : list_inactive);
        if (++i == _nr_scans || link == first) {
            break;
        }
    }
}

// __bpf_lru_list_rotate_inactive: from next_inactive_rotation towards the head, referenced nodes go to the active
// list; the others stay for the next shrink.
void lru::rotate_inactive(list& l) {
    lru_link* inactive = &l.lists[list_inactive];
    if (list_empty(inactive)) {
        return;
    }
    lru_link* last = l.next_inactive_rotation->next;
    if (last == inactive) {
        last = last->next;
    }
    lru_link* current = l.next_inactive_rotation;
    lru_link* next = inactive;
    unsigned i = 0;
    while (i < _nr_scans) {
        if (current == inactive) {
            current = current->prev;
            continue;
        }
        lru_node* node = node_of(current);
        next = current->prev;
        if (node->ref.load(std::memory_order_relaxed)) {
            move(l, node, list_active);
        }
        if (current == last) {
            break;
        }
        current = next;
        ++i;
    }
    l.next_inactive_rotation = next;
}

void lru::rotate(list& l) {
    if (l.counts[list_inactive] < l.counts[list_active]) {
        rotate_active(l);
    }
    rotate_inactive(l);
}

// __bpf_lru_list_shrink_inactive: evict unreferenced nodes from the inactive tail.
unsigned lru::shrink_inactive(list& l, unsigned target, lru_link* free_list, std::uint8_t target_type) {
    lru_link* inactive = &l.lists[list_inactive];
    unsigned shrunk = 0;
    unsigned i = 0;
    for (lru_link *link = inactive->prev, *previous = link->prev; link != inactive;
         link = previous, previous = link->prev) {
        lru_node* node = node_of(link);
        const bool pending_free = node->pending_free.load(std::memory_order_relaxed) != 0;
        if (node->ref.load(std::memory_order_relaxed) && !pending_free) {
            move(l, node, list_active);
        } else if (pending_free || _remove(*node)) {
            move_to_free(l, node, free_list, target_type);
            if (++shrunk == target) {
                break;
            }
        }
        if (++i == _nr_scans) {
            break;
        }
    }
    return shrunk;
}

// __bpf_lru_list_shrink: if nothing unreferenced was found, evict one node ignoring the ref bit, inactive first.
unsigned lru::shrink(list& l, unsigned target, lru_link* free_list, std::uint8_t target_type) {
    if (const unsigned shrunk = shrink_inactive(l, target, free_list, target_type); shrunk != 0) {
        return shrunk;
    }
    lru_link* force = !list_empty(&l.lists[list_inactive]) ? &l.lists[list_inactive] : &l.lists[list_active];
    for (lru_link *link = force->prev, *previous = link->prev; link != force; link = previous, previous = link->prev) {
        lru_node* node = node_of(link);
        if (node->pending_free.load(std::memory_order_relaxed) || _remove(*node)) {
            move_to_free(l, node, free_list, target_type);
            return 1;
        }
    }
    return 0;
}

// __local_list_flush
void lru::flush_local(list& l, local_list& local) {
    for (lru_link *link = local.pending.prev, *previous = link->prev; link != &local.pending;
         link = previous, previous = link->prev) {
        lru_node* node = node_of(link);
        if (node->pending_free.load(std::memory_order_relaxed)) {
            move_in(l, node, list_free);
        } else if (node->ref.load(std::memory_order_relaxed)) {
            move_in(l, node, list_active);
        } else {
            move_in(l, node, list_inactive);
        }
    }
}

// bpf_lru_list_pop_free_to_local; the caller holds local.lock.
void lru::pop_free_to_local(local_list& local) {
    list& l = *_common;
    lru_link harvested;
    {
        std::lock_guard guard(l.lock);
        flush_local(l, local);
        rotate(l);
        unsigned free_count = 0;
        lru_link* free_list = &l.lists[list_free];
        for (lru_link *link = free_list->next, *next = link->next; link != free_list; link = next, next = link->next) {
            move_to_free(l, node_of(link), &harvested, local_free);
            if (++free_count == _target_free) {
                break;
            }
        }
        if (free_count < _target_free) {
            shrink(l, _target_free - free_count, &harvested, local_free);
        }
    }
    for (lru_link *link = harvested.next, *next = link->next; link != &harvested; link = next, next = link->next) {
        list_del(link);
        local.push(node_of(link));
    }
}

// __local_list_pop_pending: the oldest unreferenced pending node, else the oldest at all.
lru_node* lru::pop_pending(local_list& local) {
    for (const bool force : {false, true}) {
        for (lru_link* link = local.pending.prev; link != &local.pending; link = link->prev) {
            lru_node* node = node_of(link);
            if ((!node->ref.load(std::memory_order_relaxed) || force) &&
                (node->pending_free.load(std::memory_order_relaxed) || _remove(*node))) {
                list_del(link);
                return node;
            }
        }
    }
    return nullptr;
}

// bpf_percpu_lru_pop_free
lru_node* lru::percpu_pop_free(unsigned cpu) {
    list& l = *_percpu_lists[cpu < _cpus ? cpu : 0];
    std::lock_guard guard(l.lock);
    rotate(l);
    lru_link* free_list = &l.lists[list_free];
    if (list_empty(free_list)) {
        shrink(l, percpu_free_target, free_list, list_free);
    }
    if (list_empty(free_list)) {
        return nullptr;
    }
    lru_node* node = node_of(free_list->next);
    node->ref.store(0, std::memory_order_relaxed);
    move(l, node, list_inactive);
    return node;
}

// bpf_common_lru_pop_free
lru_node* lru::common_pop_free(unsigned cpu) {
    local_list& local = *_locals[cpu];
    const auto add_pending = [&](lru_node* node) { // __local_list_add_pending
        node->cpu = cpu;
        node->type.store(local_pending, std::memory_order_relaxed);
        node->pending_free.store(0, std::memory_order_relaxed);
        node->ref.store(0, std::memory_order_relaxed);
        list_add(&node->link, &local.pending);
    };
    {
        std::lock_guard guard(local.lock);
        lru_node* node = local.pop();
        if (node == nullptr) {
            pop_free_to_local(local);
            node = local.pop();
        }
        if (node != nullptr) {
            add_pending(node);
            return node;
        }
    }
    // Nothing free here nor globally: steal from the cpus' local lists, round robin from next_steal.
    const auto lists = static_cast<unsigned>(_locals.size());
    const unsigned first_steal = local.next_steal;
    unsigned steal = first_steal;
    lru_node* node = nullptr;
    do {
        local_list& victim = *_locals[steal];
        {
            std::lock_guard guard(victim.lock);
            node = victim.pop();
            if (node == nullptr) {
                node = pop_pending(victim);
            }
        }
        steal = (steal + 1) % lists;
    } while (node == nullptr && steal != first_steal);
    local.next_steal = steal;
    if (node == nullptr) {
        return nullptr;
    }
    std::lock_guard guard(local.lock);
    add_pending(node);
    return node;
}

lru_node* lru::pop_free(unsigned cpu) { return _percpu ? percpu_pop_free(cpu) : common_pop_free(cpu); }

void lru::push_free(lru_node* node) {
    if (_percpu) { // bpf_percpu_lru_push_free
        list& l = *_percpu_lists[node->cpu];
        std::lock_guard guard(l.lock);
        move(l, node, list_free);
        return;
    }
    // bpf_common_lru_push_free: a node still pending on its cpu goes back to that cpu's free stack.
    if (node->type.load(std::memory_order_relaxed) == local_pending) {
        local_list& local = *_locals[node->cpu];
        std::lock_guard guard(local.lock);
        if (node->type.load(std::memory_order_relaxed) == local_pending) {
            node->type.store(local_free, std::memory_order_relaxed);
            node->ref.store(0, std::memory_order_relaxed);
            list_del(&node->link);
            local.push(node);
            return;
        }
    }
    list& l = *_common;
    std::lock_guard guard(l.lock);
    move(l, node, list_free);
}

} // namespace sluice::ebpf::maps
