// bpf_trace_printk (kernel/trace/bpf_trace.c) with the format rules of bpf_bprintf_prepare (kernel/bpf/helpers.c):
//  - the format must hold a NUL within fmt_size, and only printable ASCII or whitespace;
//  - at most 3 conversions (MAX_TRACE_PRINTK_VARARGS), "%%" is not one;
//  - a conversion is %[0+- ]*[width] then: d i u x X with optional l or ll; c; s (followed by the end, a space or
//    punctuation); p, pK, px, ps, pS; pks, pus; pI4 pi4 pI6 pi6. Anything else (%hd, %.2d, %f, %n, %sfoo) -> -EINVAL.
// The line goes to the worker's trace sink, rate-limited; the result is the formatted length, as bstr_printf's.
//
// Differences sluice owns up to: %p, %pK, %ps and %pS print the raw address in hex (the kernel hashes %p and resolves
// symbols for %ps/%pS); %s and %pks/%pus read the string directly (up to 512 bytes), so an invalid pointer that the
// kernel would print as an empty string crashes here, as any wild pointer in a program would.

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string_view>

#include "ebpf/helpers/helpers_internal.hpp"

namespace sluice::ebpf::helpers {
namespace {

constexpr std::size_t max_arguments = 3;  // MAX_TRACE_PRINTK_VARARGS
constexpr std::size_t output_size = 1024; // BPF_TRACE_PRINTK_SIZE
constexpr std::size_t max_string = 512;   // MAX_BPRINTF_BUF: the kernel's room for copied strings

bool printable(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x80 && (std::isprint(u) != 0 || std::isspace(u) != 0);
}

bool space_or_punctuation(char c) {
    const auto u = static_cast<unsigned char>(c);
    return std::isspace(u) != 0 || std::ispunct(u) != 0;
}

/// Appends to a fixed buffer, counting what would have been written past its end (as vsnprintf does).
struct output {
    std::array<char, output_size> text{};
    std::size_t length{}; ///< would-be length

    void append(std::string_view piece) {
        if (length < text.size() - 1) {
            const std::size_t room = text.size() - 1 - length;
            std::memcpy(text.data() + length, piece.data(), std::min(room, piece.size()));
        }
        length += piece.size();
    }

    template <typename... Arguments> void format(const char* spec, Arguments... arguments) {
        std::array<char, 600> piece{};
        const int written = std::snprintf(piece.data(), piece.size(), spec, arguments...);
        if (written > 0) {
            append({piece.data(), std::min(static_cast<std::size_t>(written), piece.size() - 1)});
        }
    }

    std::string_view line() const { return {text.data(), std::min(length, text.size() - 1)}; }
};

void ip_address(output& out, char style, char version, const std::uint8_t* address) {
    if (version == '4') {
        out.format(style == 'I' ? "%u.%u.%u.%u" : "%03u.%03u.%03u.%03u", address[0], address[1], address[2],
                   address[3]);
        return;
    }
    for (int i = 0; i < 16; i += 2) {
        out.format(style == 'I' && i != 0 ? ":%02x%02x" : "%02x%02x", address[i], address[i + 1]);
    }
}

/// Formats `format` with `arguments`, or returns false if the kernel would refuse it.
bool format_line(std::string_view format, const std::array<std::uint64_t, max_arguments>& arguments, output& out) {
    std::size_t used = 0;
    // `format` ends before its NUL; reading format[i + k] past the end yields '\0' as the kernel's string does.
    const auto at = [&](std::size_t i) { return i < format.size() ? format[i] : '\0'; };
    for (std::size_t i = 0; i < format.size(); ++i) {
        if (!printable(format[i])) {
            return false;
        }
        if (format[i] != '%') {
            out.append(format.substr(i, 1));
            continue;
        }
        if (at(i + 1) == '%') {
            out.append("%");
            ++i;
            continue;
        }
        if (used >= max_arguments) {
            return false;
        }
        const std::uint64_t value = arguments[used++];
        std::string spec = "%"; // at most a few flags and digits: short-string optimised, no allocation
        ++i;
        while (at(i) == '0' || at(i) == '+' || at(i) == '-' || at(i) == ' ') {
            spec += at(i++);
        }
        if (at(i) >= '1' && at(i) <= '9') {
            while (at(i) >= '0' && at(i) <= '9') {
                spec += at(i++);
            }
        }
        const char conversion = at(i);
        if (conversion == 'p') {
            if ((at(i + 1) == 'k' || at(i + 1) == 'u') && at(i + 2) == 's') {
                i += 2;
                if (at(i + 1) != '\0' && !space_or_punctuation(at(i + 1))) {
                    return false;
                }
                const char* text = pointer<const char>(value);
                out.append(text == nullptr ? std::string_view{} : std::string_view{text, strnlen(text, max_string)});
                continue;
            }
            const char next = at(i + 1);
            if (next == '\0' || space_or_punctuation(next) || next == 'K' || next == 'x' || next == 's' ||
                next == 'S') {
                out.format("%016llx", static_cast<unsigned long long>(value));
                if (next == 'K' || next == 'x' || next == 's' || next == 'S') {
                    ++i;
                }
                continue;
            }
            if ((next != 'i' && next != 'I') || (at(i + 2) != '4' && at(i + 2) != '6')) {
                return false;
            }
            ip_address(out, next, at(i + 2), pointer<const std::uint8_t>(value));
            i += 2;
            continue;
        }
        if (conversion == 's') {
            if (at(i + 1) != '\0' && !space_or_punctuation(at(i + 1))) {
                return false;
            }
            const char* text = pointer<const char>(value);
            spec += ".*s";
            const std::size_t length = text == nullptr ? 0 : strnlen(text, max_string);
            out.format(spec.c_str(), static_cast<int>(length), text == nullptr ? "" : text);
            continue;
        }
        if (conversion == 'c') {
            spec += 'c';
            out.format(spec.c_str(), static_cast<int>(static_cast<unsigned char>(value)));
            continue;
        }
        int size = 4;
        if (at(i) == 'l') {
            size = 8;
            ++i;
        }
        if (at(i) == 'l') {
            ++i;
        }
        const char integer = at(i);
        if (integer != 'i' && integer != 'd' && integer != 'u' && integer != 'x' && integer != 'X') {
            return false;
        }
        spec += "ll";
        spec += integer;
        const bool is_signed = integer == 'i' || integer == 'd';
        if (size == 4) {
            const auto word = static_cast<std::uint32_t>(value);
            if (is_signed) {
                out.format(spec.c_str(), static_cast<long long>(static_cast<std::int32_t>(word)));
            } else {
                out.format(spec.c_str(), static_cast<unsigned long long>(word));
            }
        } else if (is_signed) {
            out.format(spec.c_str(), static_cast<long long>(value));
        } else {
            out.format(spec.c_str(), static_cast<unsigned long long>(value));
        }
    }
    return true;
}

std::uint64_t coarse_now_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

std::uint64_t trace_printk(std::uint64_t format_address, std::uint64_t format_size, std::uint64_t first,
                           std::uint64_t second, std::uint64_t third, call_context& context) {
    const char* format = pointer<const char>(format_address);
    const auto size = static_cast<std::uint32_t>(format_size);
    const void* end = format == nullptr ? nullptr : std::memchr(format, 0, size);
    if (end == nullptr) {
        return error_code(-EINVAL);
    }
    output out;
    if (!format_line({format, static_cast<std::size_t>(static_cast<const char*>(end) - format)}, {first, second, third},
                     out)) {
        return error_code(-EINVAL);
    }
    execution_state& state = state_of(context);
    if (state.trace != nullptr) {
        // Rate limit per worker: a program printing per packet must not flood the sink.
        const std::uint64_t now = coarse_now_ns();
        if (now - state.trace_window_start_ns >= 1'000'000'000ULL) {
            state.trace_window_start_ns = now;
            state.trace_window_lines = 0;
        }
        if (state.trace_lines_per_second == 0 || state.trace_window_lines < state.trace_lines_per_second) {
            ++state.trace_window_lines;
            std::string_view line = out.line();
            if (!line.empty() && line.back() == '\n') {
                line.remove_suffix(1);
            }
            state.trace(line, state.cpu, state.trace_opaque);
        } else {
            ++state.trace_dropped;
        }
    }
    return out.length;
}

} // namespace

void register_trace_printk(helper_table& table) {
    add(table, BPF_FUNC_trace_printk, trace_printk);
}

} // namespace sluice::ebpf::helpers
