// Map contents in and out of JSON and text. Control-plane code: it allocates freely and reports errors as values.
#include "map_json.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

namespace sluice::cli {
namespace {

using bytes = std::vector<std::byte>;

std::optional<int> hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return std::nullopt;
}

/// One key or value in any of the file's three forms, checked against `size`. `what` is "key" or "value".
expected<bytes> parse_bytes(const nlohmann::json& item, std::size_t size, std::string_view what) {
    bytes out;
    if (item.is_string()) {
        std::string_view text = item.get_ref<const std::string&>();
        if (text.starts_with("0x") || text.starts_with("0X")) {
            text.remove_prefix(2);
        }
        std::optional<int> high;
        for (const char c : text) {
            if (std::isspace(static_cast<unsigned char>(c)) != 0) {
                continue;
            }
            const auto digit = hex_digit(c);
            if (!digit) {
                return error{fmt::format("{} \"{}\" is not hex: '{}' is not a hex digit", what, text, c)};
            }
            if (high) {
                out.push_back(static_cast<std::byte>(*high * 16 + *digit));
                high.reset();
            } else {
                high = digit;
            }
        }
        if (high) {
            return error{fmt::format("{} \"{}\" has an odd number of hex digits", what, text)};
        }
    } else if (item.is_array()) {
        for (const auto& element : item) {
            if (!element.is_number_integer() || element.get<std::int64_t>() < 0 || element.get<std::int64_t>() > 255) {
                return error{fmt::format("{} array holds {}, which is not a byte value 0..255", what, element.dump())};
            }
            out.push_back(static_cast<std::byte>(element.get<std::int64_t>()));
        }
    } else if (item.is_number_integer()) {
        if (size != 4 && size != 8) {
            return error{fmt::format("{} is an integer, but the map's {}s are {} bytes (integers fit 4- or 8-byte {}s "
                                     "only; use a hex string or a byte array)",
                                     what, what, size, what)};
        }
        std::uint64_t number = 0;
        if (item.is_number_unsigned()) {
            number = item.get<std::uint64_t>();
        } else {
            const auto signed_number = item.get<std::int64_t>();
            if (size == 4 && signed_number < INT32_MIN) {
                return error{fmt::format("{} {} does not fit 4 bytes", what, signed_number)};
            }
            number = static_cast<std::uint64_t>(signed_number);
            if (size == 4) {
                number &= 0xffffffffU;
            }
        }
        if (size == 4 && number > 0xffffffffU) {
            return error{fmt::format("{} {} does not fit 4 bytes", what, number)};
        }
        out.resize(size);
        if (size == 4) {
            const auto narrow = static_cast<std::uint32_t>(number);
            std::memcpy(out.data(), &narrow, 4); // host order, as the program reads a __u32
        } else {
            std::memcpy(out.data(), &number, 8);
        }
        return out;
    } else {
        return error{fmt::format("{} must be a hex string, an array of byte values or an integer, not {}", what,
                                 item.dump())};
    }
    if (out.size() != size) {
        return error{fmt::format("{} has {} bytes, the map's {}s have {}", what, out.size(), what, size)};
    }
    return out;
}

std::string hex(std::span<const std::byte> data, std::string_view separator = "") {
    std::string text;
    text.reserve(data.size() * (2 + separator.size()));
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (i != 0) {
            text += separator;
        }
        text += fmt::format("{:02x}", static_cast<unsigned>(data[i]));
    }
    return text;
}

/// " (= 1234)" for 4- and 8-byte values, which are nearly always counters or ids a person wants to read as numbers.
std::string as_number(std::span<const std::byte> value) {
    if (value.size() == 4) {
        std::uint32_t number = 0;
        std::memcpy(&number, value.data(), 4);
        return fmt::format("  (= {})", number);
    }
    if (value.size() == 8) {
        std::uint64_t number = 0;
        std::memcpy(&number, value.data(), 8);
        return fmt::format("  (= {})", number);
    }
    return {};
}

std::string errno_text(long status) {
    return fmt::format("{} ({})", std::strerror(static_cast<int>(-status)), status);
}

/// The syscall-layout value (per-CPU: each cpu's value rounded up to 8 bytes) from an entry.
expected<bytes> entry_value(const ebpf::map& target, const nlohmann::json& entry) {
    const std::size_t size = target.value_size();
    if (!target.is_percpu()) {
        if (!entry.contains("value")) {
            return error{"has no \"value\""};
        }
        return parse_bytes(entry["value"], size, "value");
    }
    const std::size_t stride = (size + 7) / 8 * 8;
    bytes out(stride * target.cpus());
    if (entry.contains("values")) {
        const auto& values = entry["values"];
        if (!values.is_array() || values.size() != target.cpus()) {
            return error{fmt::format("\"values\" must list one value per CPU ({}), not {}", target.cpus(),
                                     values.dump())};
        }
        for (unsigned cpu = 0; cpu < target.cpus(); ++cpu) {
            auto value = parse_bytes(values[cpu], size, fmt::format("value of CPU {}", cpu));
            if (!value) {
                return value.error();
            }
            std::memcpy(out.data() + cpu * stride, value->data(), size);
        }
        return out;
    }
    if (!entry.contains("value")) {
        return error{"has neither \"value\" nor \"values\""};
    }
    auto value = parse_bytes(entry["value"], size, "value");
    if (!value) {
        return value.error();
    }
    for (unsigned cpu = 0; cpu < target.cpus(); ++cpu) {
        std::memcpy(out.data() + cpu * stride, value->data(), size);
    }
    return out;
}

} // namespace

expected<std::size_t> fill_map(ebpf::map& target, std::string_view name, const nlohmann::json& entries) {
    if (!entries.is_array()) {
        return error{fmt::format("map {}: the file must hold a JSON list of {{\"key\": ..., \"value\": ...}} entries",
                                 name)};
    }
    std::size_t number = 0;
    for (const auto& entry : entries) {
        ++number;
        const auto fail = [&](const std::string& why) {
            return error{fmt::format("map {}: entry {}: {}", name, number, why)};
        };
        if (!entry.is_object()) {
            return fail(fmt::format("must be an object with \"key\" and \"value\", not {}", entry.dump()));
        }
        bytes key;
        if (target.key_size() != 0) {
            if (!entry.contains("key")) {
                return fail("has no \"key\"");
            }
            auto parsed = parse_bytes(entry["key"], target.key_size(), "key");
            if (!parsed) {
                return fail(parsed.error().message);
            }
            key = std::move(*parsed);
        }
        auto value = entry_value(target, entry);
        if (!value) {
            return fail(value.error().message);
        }
        const long status =
            target.update_elem(key.empty() ? nullptr : key.data(), value->data(), ebpf::update_flag::any);
        if (status != 0) {
            return fail(fmt::format("the map refused the update: {}", errno_text(status)));
        }
    }
    return number;
}

expected<std::size_t> fill_map_from_file(ebpf::map& target, std::string_view name, const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return error{fmt::format("map {}: cannot open {}: {}", name, path, std::strerror(errno))};
    }
    const nlohmann::json entries = nlohmann::json::parse(in, nullptr, false);
    if (entries.is_discarded()) {
        return error{fmt::format("map {}: {} is not valid JSON", name, path)};
    }
    auto filled = fill_map(target, name, entries);
    if (!filled) {
        return error{fmt::format("{} (in {})", filled.error().message, path)};
    }
    return filled;
}

nlohmann::json dump_map_json(std::string_view name, ebpf::map& source) {
    nlohmann::json out{{"name", name},
                       {"type", ebpf::to_string(source.type())},
                       {"key_size", source.key_size()},
                       {"value_size", source.value_size()},
                       {"max_entries", source.max_entries()}};
    nlohmann::json entries = nlohmann::json::array();
    const std::size_t size = source.value_size();
    const std::size_t stride = (size + 7) / 8 * 8;
    const long status = source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
        nlohmann::json entry{{"key", hex(key)}};
        if (source.is_percpu()) {
            nlohmann::json values = nlohmann::json::array();
            for (unsigned cpu = 0; cpu < source.cpus(); ++cpu) {
                values.push_back(hex(value.subspan(cpu * stride, size)));
            }
            entry["values"] = std::move(values);
        } else {
            entry["value"] = hex(value);
        }
        entries.push_back(std::move(entry));
        return true;
    });
    if (status != 0) {
        out["error"] = fmt::format("cannot list entries: {}", errno_text(status));
    } else {
        out["entries"] = std::move(entries);
    }
    return out;
}

std::string dump_map_text(std::string_view name, ebpf::map& source) {
    std::string text = fmt::format("map {} ({}, key {} bytes, value {} bytes, max_entries {})\n", name,
                                   ebpf::to_string(source.type()), source.key_size(), source.value_size(),
                                   source.max_entries());
    const std::size_t size = source.value_size();
    const std::size_t stride = (size + 7) / 8 * 8;
    std::size_t count = 0;
    const long status = source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
        ++count;
        if (source.is_percpu()) {
            text += fmt::format("  key: {}\n", hex(key, " "));
            for (unsigned cpu = 0; cpu < source.cpus(); ++cpu) {
                const auto slot = value.subspan(cpu * stride, size);
                text += fmt::format("    value (CPU {}): {}{}\n", cpu, hex(slot, " "), as_number(slot));
            }
        } else {
            text += fmt::format("  key: {}  value: {}{}\n", hex(key, " "), hex(value, " "), as_number(value));
        }
        return true;
    });
    if (status != 0) {
        text += fmt::format("  (cannot list entries: {})\n", errno_text(status));
    } else if (count == 0) {
        text += "  (empty)\n";
    }
    return text;
}

} // namespace sluice::cli
