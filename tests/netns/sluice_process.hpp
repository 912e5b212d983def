// The `sluice` command as a child process, optionally inside a network namespace (setns before exec), with its
// stdout and stderr in files: started, waited for, or stopped with SIGTERM as a user's Ctrl-C would.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

class sluice_process {
public:
    /// Starts SLUICE_BINARY with `arguments`, inside /run/netns/NAMESPACE when it is not empty.
    sluice_process(const std::string& space, const std::vector<std::string>& arguments) {
        static int counter = 0;
        const auto base = std::filesystem::temp_directory_path() /
                          ("sluice-netns-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        _out = base.string() + ".out";
        _err = base.string() + ".err";
        std::vector<std::string> argv_storage{SLUICE_BINARY};
        argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
        std::vector<char*> argv;
        for (std::string& argument : argv_storage) {
            argv.push_back(argument.data());
        }
        argv.push_back(nullptr);
        _pid = ::fork();
        if (_pid == 0) {
            if (!space.empty()) {
                const int fd = ::open(("/run/netns/" + space).c_str(), O_RDONLY | O_CLOEXEC);
                if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
                    ::_exit(126);
                }
            }
            const int out = ::open(_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            const int err = ::open(_err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            ::dup2(out, 1);
            ::dup2(err, 2);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    sluice_process(const sluice_process&) = delete;
    sluice_process& operator=(const sluice_process&) = delete;
    ~sluice_process() {
        if (_pid > 0 && !_status) {
            ::kill(_pid, SIGKILL);
            (void)wait(std::chrono::seconds(5));
        }
        std::error_code ignored;
        std::filesystem::remove(_out, ignored);
        std::filesystem::remove(_err, ignored);
    }

    bool started() const { return _pid > 0; }
    bool running() {
        if (_status) {
            return false;
        }
        int status = 0;
        if (::waitpid(_pid, &status, WNOHANG) == _pid) {
            _status = status;
            return false;
        }
        return true;
    }

    /// Waits for the exit; SIGKILL after `timeout`. The exit code, or -signal when it was killed.
    int wait(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (running()) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(_pid, SIGKILL);
                int status = 0;
                ::waitpid(_pid, &status, 0);
                _status = status;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return WIFEXITED(*_status) ? WEXITSTATUS(*_status) : -WTERMSIG(*_status);
    }

    /// SIGTERM (a clean shutdown), then wait().
    int stop(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        if (running()) {
            ::kill(_pid, SIGTERM);
        }
        return wait(timeout);
    }

    std::string out() const { return read(_out); }
    std::string err() const { return read(_err); }

private:
    static std::string read(const std::string& path) {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    pid_t _pid{-1};
    std::optional<int> _status;
    std::string _out;
    std::string _err;
};

struct finished {
    int status;
    std::string out;
    std::string err;
};

/// Runs sluice to completion (at most `timeout`).
inline finished run_sluice(const std::string& space, const std::vector<std::string>& arguments,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    sluice_process process(space, arguments);
    const int status = process.wait(timeout);
    return {status, process.out(), process.err()};
}

} // namespace sluice::test
