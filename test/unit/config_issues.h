// Helpers shared by the configuration tests: the issues parse_config reports for a YAML text.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace xlat64::testing {

// The issues parse_config reports for TEXT; fails the test when it accepts TEXT.
inline std::vector<ConfigIssue> issues_of(const std::string& text) {
    try {
        parse_config(text, "test.yaml");
    } catch (const ConfigError& e) {
        CHECK(e.source() == "test.yaml");
        return e.issues();
    }
    FAIL("accepted:\n" << text);
    return {};
}

// The one issue TEXT has; on failure the report shows the text and every issue found.
inline ConfigIssue only_issue(const std::string& text) {
    auto issues = issues_of(text);
    INFO(text);
    for (const auto& issue : issues) {
        UNSCOPED_INFO(issue.key << ": " << issue.message);
    }
    REQUIRE(issues.size() == 1);
    return issues.front();
}

}  // namespace xlat64::testing
