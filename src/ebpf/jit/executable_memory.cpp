// W^X executable memory (contract in executable_memory.hpp).
#include "ebpf/jit/executable_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace sluice::ebpf::jit {

expected<executable_memory> executable_memory::create(std::span<const std::uint8_t> code) {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t mapped = (code.size() + page - 1) / page * page;
    if (mapped == 0) {
        return error{"the JIT produced no code"};
    }
    void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return error{fmt::format("cannot map {} bytes for JIT code: {}", mapped, std::strerror(errno))};
    }
    std::memcpy(base, code.data(), code.size());
    // Fill the tail with int3, so that a stray jump past the code traps instead of running zeros.
    std::memset(static_cast<std::uint8_t*>(base) + code.size(), 0xcc, mapped - code.size());
    if (::mprotect(base, mapped, PROT_READ | PROT_EXEC) != 0) {
        const int saved = errno;
        ::munmap(base, mapped);
        return error{fmt::format("cannot make JIT code executable: {}", std::strerror(saved))};
    }
    return executable_memory(static_cast<std::uint8_t*>(base), code.size(), mapped);
}

executable_memory::executable_memory(executable_memory&& other) noexcept
    : _base(std::exchange(other._base, nullptr)), _size(std::exchange(other._size, 0)),
      _mapped(std::exchange(other._mapped, 0)) {}

executable_memory& executable_memory::operator=(executable_memory&& other) noexcept {
    if (this != &other) {
        release();
        _base = std::exchange(other._base, nullptr);
        _size = std::exchange(other._size, 0);
        _mapped = std::exchange(other._mapped, 0);
    }
    return *this;
}

executable_memory::~executable_memory() {
    release();
}

void executable_memory::release() {
    if (_base != nullptr) {
        ::munmap(_base, _mapped);
        _base = nullptr;
    }
}

} // namespace sluice::ebpf::jit
