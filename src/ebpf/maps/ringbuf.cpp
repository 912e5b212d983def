// BPF_MAP_TYPE_RINGBUF (the kernel's kernel/bpf/ringbuf.c), with libbpf's consumer loop (ringbuf.c) for the control
// plane.
//
// max_entries bytes of data, a power of two and a multiple of the page size, mapped twice back to back (a memfd
// mapped at two adjacent addresses) so that a record crossing the end is contiguous, as the kernel maps its pages
// twice. Producers reserve under a spinlock and commit without it by clearing the header's busy bit; the consumer
// advances consumer_pos past committed records only. A reservation fails when it would put the producer more than
// size - 1 bytes ahead of the consumer or of the oldest uncommitted record. Records carry the kernel's 8-byte header;
// pg_off counts pages from the start of the kernel's struct bpf_ringbuf, whose data begins at page 3, so values match
// what the kernel writes (no user-space consumer reads pg_off).
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <mutex>
#include <system_error>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

constexpr std::uint64_t max_record_size = UINT32_MAX / 4; // RINGBUF_MAX_RECORD_SZ
constexpr std::uint32_t data_page_offset = 3;              // RINGBUF_PGOFF + RINGBUF_POS_PAGES

/// size bytes mapped twice, back to back.
class double_mapping {
public:
    explicit double_mapping(std::size_t size) : _size(size) {
        const int fd = memfd_create("sluice-ringbuf", MFD_CLOEXEC);
        if (fd < 0) {
            throw std::system_error(errno, std::generic_category(), "memfd_create for the ring buffer");
        }
        if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
            const int saved = errno;
            close(fd);
            throw std::system_error(saved, std::generic_category(), "sizing the ring buffer");
        }
        void* area = mmap(nullptr, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area == MAP_FAILED) {
            const int saved = errno;
            close(fd);
            throw std::system_error(saved, std::generic_category(), "reserving the ring buffer's addresses");
        }
        _base = static_cast<std::byte*>(area);
        for (std::size_t copy = 0; copy < 2; ++copy) {
            if (mmap(_base + copy * size, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
                const int saved = errno;
                close(fd);
                munmap(_base, 2 * size);
                throw std::system_error(saved, std::generic_category(), "mapping the ring buffer");
            }
        }
        close(fd);
    }
    ~double_mapping() { munmap(_base, 2 * _size); }
    double_mapping(const double_mapping&) = delete;
    double_mapping& operator=(const double_mapping&) = delete;

    std::byte* data() const { return _base; }

private:
    std::size_t _size;
    std::byte* _base{};
};

std::uint32_t load_len(const std::byte* header) {
    return __atomic_load_n(reinterpret_cast<const std::uint32_t*>(header), __ATOMIC_ACQUIRE);
}

class ringbuf final : public ringbuf_map {
public:
    ringbuf(const map_definition& definition, unsigned cpus)
        : ringbuf_map(definition, cpus), _mask(definition.max_entries - 1ULL), _data(definition.max_entries) {}

    void* lookup(const void*, unsigned) override { return nullptr; }
    long update(const void*, const void*, std::uint64_t, unsigned) override { return -enotsupp; }
    long remove(const void*, unsigned) override { return -enotsupp; }

    // __bpf_ringbuf_reserve
    void* reserve(std::uint64_t size, std::uint64_t flags) override {
        if (flags != 0 || size > max_record_size) {
            return nullptr;
        }
        const std::uint64_t length = round_up8(size + header_size);
        if (length > _mask + 1) {
            return nullptr;
        }
        const std::uint64_t consumer = _consumer_pos.load(std::memory_order_acquire);
        std::lock_guard guard(_lock);
        std::uint64_t pending = _pending_pos;
        const std::uint64_t producer = _producer_pos.load(std::memory_order_relaxed);
        const std::uint64_t new_producer = producer + length;
        // Skip past records committed since: the oldest busy one bounds how far producers may run ahead.
        while (pending < producer) {
            const std::uint32_t record_length = load_len(_data.data() + (pending & _mask));
            if (record_length & busy_bit) {
                break;
            }
            pending += round_up8((record_length & ~discard_bit) + std::uint64_t{header_size});
        }
        _pending_pos = pending;
        if (new_producer - consumer > _mask || new_producer - pending > _mask) {
            return nullptr;
        }
        std::byte* header = _data.data() + (producer & _mask);
        const auto page = static_cast<std::uint32_t>(data_page_offset + ((producer & _mask) / page_size));
        __atomic_store_n(reinterpret_cast<std::uint32_t*>(header), static_cast<std::uint32_t>(size) | busy_bit,
                         __ATOMIC_RELAXED);
        std::memcpy(header + 4, &page, 4);
        _producer_pos.store(new_producer, std::memory_order_release);
        return header + header_size;
    }

    void submit(void* sample, std::uint64_t flags) override { commit(sample, flags, false); }
    void discard(void* sample, std::uint64_t flags) override { commit(sample, flags, true); }

    long output(const void* data, std::uint64_t size, std::uint64_t flags) override {
        if (flags & ~(no_wakeup | force_wakeup)) {
            return -EINVAL;
        }
        void* record = reserve(size, 0);
        if (record == nullptr) {
            return -EAGAIN;
        }
        std::memcpy(record, data, size);
        commit(record, flags, false);
        return 0;
    }

    std::uint64_t query(std::uint64_t flags) const override {
        switch (flags) {
        case avail_data:
            return _producer_pos.load(std::memory_order_acquire) - _consumer_pos.load(std::memory_order_acquire);
        case ring_size: return _mask + 1;
        case cons_pos: return _consumer_pos.load(std::memory_order_acquire);
        case prod_pos: return _producer_pos.load(std::memory_order_acquire);
        default: return 0;
        }
    }

    // libbpf's ringbuf_process_ring
    long consume(const std::function<int(std::span<const std::byte>)>& record) override {
        long count = 0;
        std::uint64_t consumer = _consumer_pos.load(std::memory_order_acquire);
        for (;;) {
            bool progressed = false;
            const std::uint64_t producer = _producer_pos.load(std::memory_order_acquire);
            while (consumer < producer) {
                const std::byte* header = _data.data() + (consumer & _mask);
                const std::uint32_t length = load_len(header);
                if (length & busy_bit) {
                    return count;
                }
                progressed = true;
                const std::uint32_t size = length & ~(busy_bit | discard_bit);
                consumer += round_up8(std::uint64_t{size} + header_size);
                if (!(length & discard_bit)) {
                    const int status = record(std::span<const std::byte>(header + header_size, size));
                    if (status < 0) {
                        _consumer_pos.store(consumer, std::memory_order_release);
                        return status;
                    }
                    ++count;
                }
                _consumer_pos.store(consumer, std::memory_order_release);
            }
            if (!progressed) {
                return count;
            }
        }
    }

    std::uint64_t wakeups() const override { return _wakeups.load(std::memory_order_relaxed); }

protected:
    long sys_lookup(const void*, void*) override { return -enotsupp; }
    long sys_update(const void*, const void*, std::uint64_t) override { return -enotsupp; }
    long sys_delete(const void*) override { return -enotsupp; }
    long sys_get_next_key(const void*, void*) override { return -enotsupp; }

private:
    // bpf_ringbuf_commit: publish the final length; wake the consumer if it waits at this record.
    void commit(void* sample, std::uint64_t flags, bool discarded) {
        auto* header = static_cast<std::byte*>(sample) - header_size;
        auto* length = reinterpret_cast<std::uint32_t*>(header);
        std::uint32_t final_length = __atomic_load_n(length, __ATOMIC_RELAXED) ^ busy_bit;
        if (discarded) {
            final_length |= discard_bit;
        }
        __atomic_exchange_n(length, final_length, __ATOMIC_SEQ_CST);
        const auto position = static_cast<std::uint64_t>(header - _data.data());
        const std::uint64_t consumer = _consumer_pos.load(std::memory_order_acquire) & _mask;
        if ((flags & force_wakeup) || (consumer == position && !(flags & no_wakeup))) {
            _wakeups.fetch_add(1, std::memory_order_relaxed);
        }
    }

    std::uint64_t _mask;
    double_mapping _data;
    alignas(64) std::atomic<std::uint64_t> _consumer_pos{};
    alignas(64) std::atomic<std::uint64_t> _producer_pos{};
    std::uint64_t _pending_pos{};
    spinlock _lock;
    std::atomic<std::uint64_t> _wakeups{};
};

} // namespace

std::optional<definition_problem> check_ringbuf(const map_definition& definition, unsigned) {
    if (definition.map_flags & ~map_flag::numa_node) {
        return problem(EINVAL, "map_flags", "a ring buffer accepts only BPF_F_NUMA_NODE");
    }
    if (definition.key_size != 0) {
        return problem(EINVAL, "key_size", "must be 0");
    }
    if (definition.value_size != 0) {
        return problem(EINVAL, "value_size", "must be 0");
    }
    if (!std::has_single_bit(definition.max_entries) || definition.max_entries % page_size != 0) {
        return problem(EINVAL, "max_entries", "the ring size must be a power of 2 and a multiple of 4096");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_ringbuf(const map_definition& definition, unsigned cpus) {
    return std::make_unique<ringbuf>(definition, cpus);
}

} // namespace sluice::ebpf::maps
