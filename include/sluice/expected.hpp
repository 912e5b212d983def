// Load-time results: a value or an error that says what was wrong.
//
// std::expected is C++23; sluice's public headers stay C++20 so that embedders need not move, so this is the small
// subset we use. Errors are values at load time; the packet path never throws (STYLE.md, "Errors").
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace sluice {

/// What went wrong, in words a user can act on. `where` is the instruction index when one is to blame.
struct error {
    std::string message;
    std::optional<std::size_t> instruction{};

    static error at(std::size_t index, std::string message) { return error{std::move(message), index}; }
};

template <typename T> class [[nodiscard]] expected {
public:
    expected(T value) : _state(std::in_place_index<0>, std::move(value)) {}
    expected(sluice::error failure) : _state(std::in_place_index<1>, std::move(failure)) {}

    bool has_value() const { return _state.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(_state); }
    const T& value() const& { return std::get<0>(_state); }
    T&& value() && { return std::get<0>(std::move(_state)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const sluice::error& error() const { return std::get<1>(_state); }

private:
    std::variant<T, sluice::error> _state;
};

/// For operations with nothing to return but an outcome.
template <> class [[nodiscard]] expected<void> {
public:
    expected() = default;
    expected(sluice::error failure) : _failure(std::move(failure)) {}

    bool has_value() const { return !_failure.has_value(); }
    explicit operator bool() const { return has_value(); }
    const sluice::error& error() const { return *_failure; }

private:
    std::optional<sluice::error> _failure;
};

} // namespace sluice
