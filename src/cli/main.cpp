// sluice: XDP as a userspace engine. One command with subcommands, in the conventions of bpftool and xdp-loader.
#include <CLI/CLI.hpp>

#include "bench_command.hpp"
#include "disasm_command.hpp"
#include "features_command.hpp"
#include "run_command.hpp"
#include "verify_command.hpp"
#ifdef SLUICE_BENCH_EXTRAS
#include "bench_extras.hpp"
#endif

int main(int argc, char** argv) {
    CLI::App app{"sluice: run unmodified XDP programs in userspace"};
    app.require_subcommand(1);
    sluice::cli::add_disasm_command(app);
    sluice::cli::add_run_command(app);
    sluice::cli::add_bench_command(app);
#ifdef SLUICE_BENCH_EXTRAS
    sluice::bench::register_extra_variants(); // sluice bench's native C twin and DPDK columns, from bench/
#endif
    sluice::cli::add_features_command(app);
    sluice::cli::add_verify_command(app);
    CLI11_PARSE(app, argc, argv);
    return 0;
}
