// The `sluice` binary (SLUICE_BINARY) run to completion as a child, for the command tests (run_command_test.cpp,
// verify_command_test.cpp): its exit status and everything it wrote to stdout and stderr. Output goes through files
// in the test's temporary directory, so a large report cannot block on a full pipe. Header-only and test-only.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../io/temp_directory.hpp"

namespace sluice::cli::command_testing {

struct result {
    int status{-1}; // the exit status; -1 when the child did not exit (killed by a signal, or could not start)
    std::string out;
    std::string err;
};

/// A temporary directory per test (io::testing::temp_directory_test) and `sluice(ARGUMENTS)` to run the command in it.
class sluice_command_test : public io::testing::temp_directory_test {
protected:
    /// Runs `sluice ARGUMENTS` (each argument single-quoted) and collects its exit status and output.
    result sluice(const std::vector<std::string>& arguments) {
        std::string command = std::string("'") + SLUICE_BINARY + "'";
        for (const std::string& argument : arguments) {
            command += " '" + argument + "'";
        }
        const std::string out = path("stdout.txt");
        const std::string err = path("stderr.txt");
        command += " >'" + out + "' 2>'" + err + "'";
        const int raw = std::system(command.c_str());
        result done;
        done.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
        done.out = text_of(out);
        done.err = text_of(err);
        return done;
    }

    static std::string text_of(const std::string& file) {
        std::ifstream in(file);
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }
};

} // namespace sluice::cli::command_testing
