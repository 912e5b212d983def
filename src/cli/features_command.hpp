// `sluice features PORT [--json]`: what a port supports (io::port_features) and, per XDP action, whether and how it
// works on that port, so a user can check before deploying. The port is opened to find out (an AF_XDP port attaches
// libxdp's program for that moment; a TAP is created and removed), so kernel ports need the same privileges as
// `sluice run`.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "sluice/io/port.hpp"

namespace sluice::cli {

/// Adds the `features` subcommand to `app`.
void add_features_command(CLI::App& app);

/// One line per XDP action (XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT): whether it works on frames received on or
/// sent to a port with these features, and how. For the text report and the JSON.
struct action_support {
    std::string action;
    bool works{};
    std::string how;
};
std::vector<action_support> describe_actions(const io::port_features& features);

} // namespace sluice::cli
