// BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK (the kernel's kernel/bpf/queue_stack_maps.c).
//
// A ring of max_entries + 1 slots under a spinlock, which every operation takes, readers included, as in the kernel:
// a popped value is copied out, so no slot is ever handed to a program. The queue pops the oldest value, the stack
// the newest; push with BPF_EXIST on a full map drops the oldest value to make room. There are no keys: the control
// plane's lookup is a peek, update a push, lookup_and_delete a pop; delete and get_next_key are -EINVAL.
#include <mutex>
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

class queue_stack final : public map {
public:
    queue_stack(const map_definition& definition, unsigned cpus)
        : map(definition, cpus), _stack(definition.type == map_type::stack), _size(definition.max_entries + 1ULL),
          _values(_size * definition.value_size) {}

    void* lookup(const void*, unsigned) override { return nullptr; }
    long update(const void*, const void* value, std::uint64_t flags, unsigned) override { return push(value, flags); }
    long remove(const void*, unsigned) override { return -EINVAL; }

    long push(const void* value, std::uint64_t flags) override {
        if ((flags & update_flag::noexist) || flags > update_flag::exist) {
            return -EINVAL;
        }
        std::lock_guard guard(_lock);
        if (full()) {
            if (!(flags & update_flag::exist)) {
                return -E2BIG;
            }
            _tail = next(_tail); // overwrite the oldest value
        }
        std::memcpy(slot(_head), value, value_size());
        _head = next(_head);
        return 0;
    }

    long pop(void* value) override { return take(value, true); }
    long peek(void* value) override { return take(value, false); }

protected:
    // key_size is 0: whatever key the caller passes is ignored, as the kernel copies 0 bytes of it. The system call
    // works on a kernel buffer and copies it out only on success: a failed peek or pop leaves the caller's alone.
    long sys_lookup(const void*, void* value) override { return copy_out_on_success(value, false); }
    long sys_update(const void*, const void* value, std::uint64_t flags) override { return push(value, flags); }
    long sys_delete(const void*) override { return -EINVAL; }
    long sys_get_next_key(const void*, void*) override { return -EINVAL; }
    long sys_lookup_and_delete(const void*, void* value) override { return copy_out_on_success(value, true); }

private:
    long copy_out_on_success(void* value, bool remove) {
        std::vector<std::byte> buffer(value_size());
        const long status = take(buffer.data(), remove);
        if (status == 0) {
            std::memcpy(value, buffer.data(), buffer.size());
        }
        return status;
    }

    std::uint64_t next(std::uint64_t index) const { return index + 1 >= _size ? 0 : index + 1; }
    bool full() const { return next(_head) == _tail; }
    std::byte* slot(std::uint64_t index) { return _values.data() + index * value_size(); }

    long take(void* value, bool remove) {
        std::lock_guard guard(_lock);
        if (_head == _tail) {
            std::memset(value, 0, value_size()); // the kernel zeroes the output of a failed pop/peek
            return -ENOENT;
        }
        std::uint64_t index = _tail;
        if (_stack) {
            index = _head == 0 ? _size - 1 : _head - 1;
        }
        std::memcpy(value, slot(index), value_size());
        if (remove) {
            if (_stack) {
                _head = index;
            } else {
                _tail = next(_tail);
            }
        }
        return 0;
    }

    bool _stack;
    std::uint64_t _size;
    std::uint64_t _head{};
    std::uint64_t _tail{};
    std::vector<std::byte> _values;
    spinlock _lock;
};

} // namespace

std::optional<definition_problem> check_queue_stack(const map_definition& definition, unsigned) {
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size != 0) {
        return problem(EINVAL, "key_size", "must be 0: queues and stacks have no keys");
    }
    if (definition.value_size == 0) {
        return problem(EINVAL, "value_size", "must be at least 1");
    }
    if (auto found = check_flags_allowed(definition.map_flags, map_flag::numa_node | map_flag::access_mask)) {
        return found;
    }
    if (definition.value_size > kmalloc_max_size) {
        return problem(E2BIG, "value_size", "at most 4 MiB (KMALLOC_MAX_SIZE)");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_queue_stack(const map_definition& definition, unsigned cpus) {
    return std::make_unique<queue_stack>(definition, cpus);
}

} // namespace sluice::ebpf::maps
