// The namespaces and veth pairs of the end-to-end tests (e2e_test.cpp through the engine, run_test.cpp through
// `sluice run`):
//
//   namespace a (sender)          namespace sluice                      namespace b (third)
//   va 10.77.0.2/24  <== veth ==> vs1 (no address)
//                                 vs2 (no address)                <== veth ==> vb 10.77.0.1/24, MAC of vs1
//
// a knows vs1's MAC statically for 10.77.0.1 (nothing answers ARP while sluice holds vs1), so a's datagrams to
// 10.77.0.1 arrive on vs1; b owns 10.77.0.1 with vs1's MAC, so frames sluice forwards unchanged out of vs2 are for b.
// b can send too: to 10.77.0.9, whose MAC is vs2's. Everything is removed with the object, pass or fail.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "netns.hpp"

namespace sluice::test {

inline constexpr const char* sender_ip = "10.77.0.2";
inline constexpr const char* service_ip = "10.77.0.1";
inline constexpr const char* second_service_ip = "10.77.0.9";
inline constexpr std::uint16_t sender_udp = 6000;
inline constexpr std::uint16_t service_udp = 5000;

inline std::string mac_text(const mac_address& mac) {
    char text[18];
    std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    return text;
}

inline std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline std::vector<std::uint8_t> payload(std::string_view marker, std::size_t index) {
    const std::string text = std::string(marker) + " " + std::to_string(index);
    return {text.begin(), text.end()};
}

struct topology {
    std::unique_ptr<network_namespace> sluice;
    std::unique_ptr<network_namespace> a;
    std::unique_ptr<network_namespace> b;
    std::string vs1;
    std::string vs2;
    std::string va;
    std::string vb;
    mac_address vs1_mac{};
    mac_address vs2_mac{};

    /// Builds it all; false with `error` set when a step fails.
    bool build(const std::string& tag, std::string& error) {
        sluice = network_namespace::create(tag + "-s", &error);
        a = sluice ? network_namespace::create(tag + "-a", &error) : nullptr;
        b = a ? network_namespace::create(tag + "-b", &error) : nullptr;
        if (!b) {
            return false;
        }
        vs1 = unique_interface(tag.substr(0, 2), "s1");
        vs2 = unique_interface(tag.substr(0, 2), "s2");
        va = unique_interface(tag.substr(0, 2), "a");
        vb = unique_interface(tag.substr(0, 2), "b");
        if (!add_veth(*sluice, vs1, "", *a, va, std::string(sender_ip) + "/24", &error) ||
            !add_veth(*sluice, vs2, "", *b, vb, std::string(service_ip) + "/24", &error)) {
            return false;
        }
        const auto first = sluice->mac_of(vs1);
        const auto second = sluice->mac_of(vs2);
        if (!first || !second) {
            error = "no MAC address on the sluice side";
            return false;
        }
        vs1_mac = *first;
        vs2_mac = *second;
        for (const auto& [space, command] :
             {std::pair{a.get(), std::string("neigh replace ") + service_ip + " lladdr " + mac_text(vs1_mac) + " dev " +
                                     va + " nud permanent"},
              std::pair{b.get(), "link set dev " + vb + " address " + mac_text(vs1_mac)},
              std::pair{b.get(), std::string("neigh replace ") + second_service_ip + " lladdr " + mac_text(vs2_mac) +
                                     " dev " + vb + " nud permanent"}}) {
            const command_result done = space->ip(command);
            if (!done.ok()) {
                error = command + ": " + done.output;
                return false;
            }
        }
        return true;
    }
};

} // namespace sluice::test
