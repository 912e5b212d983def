// Map definitions judged by sluice's map_create and by the kernel's, for the creation tests of every map kind
// (creation_test.cpp, redirect_maps_test.cpp): a table of cases, each the errno the kernel gives and the field sluice
// must blame, and the two checks every table goes through.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernel_oracle.hpp"

namespace sluice::ebpf::testing {

struct creation_case {
    const char* description;
    map_definition definition;
    long expected_errno; ///< 0: created
    const char* field;   ///< the field sluice must blame
};

/// sluice alone (two cpus): an accepted definition passes check_definition and creates a map; a refused one gives the
/// case's errno and field, and create_map's error names the field and the map type.
inline void expect_sluice_checks_name_the_field(const std::vector<creation_case>& cases) {
    for (const auto& test : cases) {
        SCOPED_TRACE(test.description);
        const auto found = check_definition(test.definition, 2);
        const auto created = create_map(test.definition, 2);
        if (test.expected_errno == 0) {
            EXPECT_FALSE(found.has_value()) << found->field << ": " << found->reason;
            EXPECT_TRUE(created.has_value()) << created.error().message;
            continue;
        }
        ASSERT_TRUE(found.has_value());
        EXPECT_EQ(found->errno_value, test.expected_errno);
        EXPECT_EQ(found->field, test.field);
        ASSERT_FALSE(created.has_value());
        EXPECT_NE(created.error().message.find(test.field), std::string::npos) << created.error().message;
        EXPECT_NE(created.error().message.find(std::string(to_string(test.definition.type))), std::string::npos)
            << created.error().message;
    }
}

/// The kernel creates exactly the definitions sluice accepts, and refuses the others with the same errno (checked
/// with this machine's cpu count). Skips, saying why, where bpf() is not allowed.
inline void expect_kernel_agrees(const std::vector<creation_case>& cases) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    for (const auto& test : cases) {
        SCOPED_TRACE(test.description);
        kernel_map kernel(test.definition);
        EXPECT_EQ(kernel.status(), -test.expected_errno);
        const auto found = check_definition(test.definition, kernel_cpus());
        EXPECT_EQ(found ? found->errno_value : 0, test.expected_errno);
    }
}

} // namespace sluice::ebpf::testing
