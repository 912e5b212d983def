#!/usr/bin/env bash
# Installs the Debian 12 packages sluice needs to build, test and run, and only those that are missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config            # the C++20 toolchain (GCC 12)
    clang llvm                                  # clang -target bpf for examples/, llvm-objdump for the disasm test
    libclang-rt-14-dev                          # libFuzzer and the sanitizers for fuzz/ (scripts/fuzz.sh)
    libelf-dev libbpf-dev linux-libc-dev        # ELF and BTF parsing, <linux/bpf.h>, <bpf/bpf_helpers.h>
    libxdp-dev libpcap-dev                      # AF_XDP ports, pcap in and out
    libfmt-dev libcli11-dev nlohmann-json3-dev  # formatting, the command line, --json
    libxbyak-dev                                # the JIT's assembler
    liblua5.4-dev libluajit-5.1-dev             # Lua on the XDP hook
    libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks
    iproute2                                    # network namespaces and veth pairs for port tests
    nftables                                    # bench/: sluice_lua_bench's nftables drop rule on veth
    valgrind gnuplot-nox                        # bench/: the callgrind instruction-count gate, the PNG chart
)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} Debian packages present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
