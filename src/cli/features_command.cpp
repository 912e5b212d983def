// `sluice features`: opens the port, prints its features and what each XDP action does there.
#include "features_command.hpp"

#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sluice/io/port.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::cli {
namespace {

struct features_options {
    std::string spec;
    bool json{};
    bool output{};
    bool force_copy{};
    bool force_generic{};
    std::uint32_t queue{};
    std::uint32_t ring_size{2048};
};

std::string yes_no(bool value) {
    return value ? "yes" : "no";
}

void print_text(const io::port& opened) {
    const io::port_features& features = opened.features();
    fmt::print("port {}\n", opened.name());
    const auto row = [](std::string_view key, const std::string& value) { fmt::print("  {:<17} {}\n", key, value); };
    row("kind", features.kind);
    row("interface", fmt::format("{} (ifindex {})", features.interface, features.ifindex));
    row("mode", features.mode);
    row("rx", yes_no(features.rx));
    row("tx", yes_no(features.tx));
    row("zero copy", yes_no(features.zero_copy));
    row("frags", yes_no(features.frags));
    row("metadata", yes_no(features.metadata));
    row("redirect target", yes_no(features.redirect_target));
    row("pass target", yes_no(features.pass_target));
    row("queues", std::to_string(features.queues));
    row("mtu", features.mtu == 0 ? std::string("unbounded") : std::to_string(features.mtu));
    fmt::print("actions\n");
    for (const action_support& action : describe_actions(features)) {
        fmt::print("  {:<17} {}: {}\n", action.action, action.works ? "yes" : "no", action.how);
    }
}

nlohmann::json to_json(const io::port& opened) {
    const io::port_features& features = opened.features();
    nlohmann::json document{
        {"port", opened.name()},
        {"kind", features.kind},
        {"interface", features.interface},
        {"ifindex", features.ifindex},
        {"mode", features.mode},
        {"rx", features.rx},
        {"tx", features.tx},
        {"zero_copy", features.zero_copy},
        {"frags", features.frags},
        {"metadata", features.metadata},
        {"redirect_target", features.redirect_target},
        {"pass_target", features.pass_target},
        {"queues", features.queues},
        {"mtu", features.mtu},
    };
    nlohmann::json actions = nlohmann::json::object();
    for (const action_support& action : describe_actions(features)) {
        actions[action.action] = {{"works", action.works}, {"how", action.how}};
    }
    document["actions"] = std::move(actions);
    return document;
}

void run(const features_options& options) {
    // A small pool: the port is opened to be described, not to carry traffic.
    xdp::frame_pool pool(64);
    io::port_options port_options;
    port_options.output = options.output;
    port_options.force_copy = options.force_copy;
    port_options.force_generic = options.force_generic;
    port_options.queue = options.queue;
    port_options.ring_size = options.ring_size;
    auto opened = io::open_port(options.spec, pool, port_options);
    if (!opened) {
        fmt::print(stderr, "sluice features: {}\n", opened.error().message);
        throw CLI::RuntimeError(1);
    }
    if (options.json) {
        std::cout << to_json(*opened.value()).dump(2) << '\n';
    } else {
        print_text(*opened.value());
    }
}

} // namespace

std::vector<action_support> describe_actions(const io::port_features& features) {
    const std::string& kind = features.kind;
    std::vector<action_support> actions;
    if (!features.rx) {
        // An output-only port: what matters is what it takes from other ports.
        actions.push_back({"XDP_DROP", false, "this port receives nothing: no program runs on its frames"});
        actions.push_back({"XDP_PASS", features.pass_target,
                           features.pass_target ? fmt::format("passed frames of other ports are written here "
                                                              "(--pass {})",
                                                              kind + ":" + features.interface)
                                                : "cannot take passed frames"});
        actions.push_back({"XDP_TX", false, "this port receives nothing: no frame is sent back out of it"});
        actions.push_back({"XDP_REDIRECT", features.redirect_target,
                           features.redirect_target ? "frames redirected here by ifindex or devmap are written"
                                                    : "not a redirect target"});
        return actions;
    }

    if (kind == "afpacket") {
        actions.push_back({"XDP_DROP", true,
                           "drops sluice's copy only: AF_PACKET taps the interface, so the kernel stack has received "
                           "the packet as well"});
        actions.push_back({"XDP_PASS", true,
                           "the kernel stack already has the packet (AF_PACKET copies); sluice counts the frame and "
                           "releases it, or also sends it to a --pass target"});
    } else if (kind == "afxdp") {
        actions.push_back({"XDP_DROP", true, "the frame goes back to the UMEM and, from there, to the fill ring"});
        actions.push_back(
            {"XDP_PASS", true,
             "AF_XDP takes packets away from the kernel stack: passed frames reach the host only "
             "through a pass target (--pass tap:NAME); without one they are counted as passed and released"});
    } else if (kind == "tap") {
        actions.push_back({"XDP_DROP", true, "the frame goes back to the pool"});
        actions.push_back({"XDP_PASS", true,
                           "to a pass target (--pass); this TAP is itself the host stack's side, so without one the "
                           "frame is counted and released"});
    } else {
        actions.push_back({"XDP_DROP", true, "the frame goes back to the pool"});
        actions.push_back({"XDP_PASS", true,
                           "to a pass target (--pass tap:NAME towards the host stack, --pass pcap:FILE into a file); "
                           "without one the frame is counted and released"});
    }

    if (!features.tx) {
        actions.push_back({"XDP_TX", false,
                           fmt::format("a {} port cannot send: XDP_TX frames are dropped and counted as TX errors "
                                       "(use --out tx=FILE to keep them)",
                                       kind)});
    } else if (kind == "afxdp") {
        actions.push_back({"XDP_TX", true,
                           fmt::format("back out of {} through the socket's TX ring, the frame itself (no copy: it "
                                       "is already in the UMEM){}",
                                       features.interface, features.zero_copy ? ", zero-copy to the driver" : "")});
    } else if (kind == "afpacket") {
        actions.push_back(
            {"XDP_TX", true, fmt::format("back out of {}, copied into the TPACKET_V3 TX ring", features.interface)});
    } else if (kind == "tap") {
        actions.push_back({"XDP_TX", true, "written back to the TAP, so the host stack receives it"});
    } else {
        actions.push_back({"XDP_TX", true, "sent back out of this port"});
    }

    actions.push_back(
        {"XDP_REDIRECT", true,
         features.redirect_target
             ? fmt::format("to other ports by ifindex or devmap, cpumap, xskmap; other ports can "
                           "redirect here (ifindex {}){}",
                           features.ifindex, kind == "afxdp" ? " and frames of another UMEM or pool are copied in" : "")
             : "to other ports by ifindex or devmap, cpumap, xskmap; this port is not a target"});
    return actions;
}

void add_features_command(CLI::App& app) {
    auto options = std::make_shared<features_options>();
    CLI::App* command = app.add_subcommand(
        "features", "Print what a port supports (actions, zero-copy, TX, frags, redirect target, queues, MTU, mode)");
    command
        ->add_option("port", options->spec,
                     "Port spec: pcap:FILE, gen:SPEC, memory:NAME, afxdp:IFACE[:QUEUE], afpacket:IFACE, tap:NAME; "
                     "kernel ports take settings after the name: afxdp:veth0:1,generic,copy,ring=N,poll=MS")
        ->required();
    command->add_flag("--json", options->json, "JSON for programs instead of text");
    command->add_flag("--output", options->output, "pcap:FILE as an output port (creates FILE)");
    command->add_flag("--force-copy", options->force_copy, "AF_XDP: copy mode even where zero-copy would work");
    command->add_flag("--generic", options->force_generic, "AF_XDP: attach the redirect program in SKB mode");
    command->add_option("--queue", options->queue, "AF_XDP: queue, when the spec has none");
    command->add_option("--ring-size", options->ring_size, "Descriptors per ring (AF_XDP, AF_PACKET)");
    command->footer("Kernel ports are opened to be described: AF_XDP attaches libxdp's program to the interface for "
                    "that moment, a TAP is created and removed. They need the privileges `sluice run` needs.");
    command->callback([options] { run(*options); });
}

} // namespace sluice::cli
