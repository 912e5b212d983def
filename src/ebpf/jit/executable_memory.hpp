// Executable memory for JIT code, W^X: a private anonymous mapping that is writable while the code is copied in and
// read+execute from then on, never both (no page is ever mapped writable and executable at once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/expected.hpp"

namespace sluice::ebpf::jit {

class executable_memory {
public:
    executable_memory() = default;
    /// Maps enough pages for `code`, copies it in, then makes the pages read+execute.
    static expected<executable_memory> create(std::span<const std::uint8_t> code);

    executable_memory(executable_memory&& other) noexcept;
    executable_memory& operator=(executable_memory&& other) noexcept;
    executable_memory(const executable_memory&) = delete;
    executable_memory& operator=(const executable_memory&) = delete;
    ~executable_memory();

    const std::uint8_t* data() const { return _base; }
    std::size_t size() const { return _size; }          ///< bytes of code
    std::size_t mapped_size() const { return _mapped; } ///< whole pages mapped

private:
    executable_memory(std::uint8_t* base, std::size_t size, std::size_t mapped)
        : _base(base), _size(size), _mapped(mapped) {}
    void release();

    std::uint8_t* _base{};
    std::size_t _size{};
    std::size_t _mapped{};
};

} // namespace sluice::ebpf::jit
