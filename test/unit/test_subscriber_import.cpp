#include <catch2/catch.hpp>

#include "daemon/subscriber_import.h"

using namespace xlat64;

namespace {

std::string first_problem(const std::string& text) {
    const ParsedImport parsed = parse_subscriber_import(text);
    REQUIRE(parsed.problem_count >= 1);
    return "line " + std::to_string(parsed.problems.front().line) + ": " +
           parsed.problems.front().message;
}

}  // namespace

TEST_CASE("an import file: PREFIX ACCOUNT lines, comments and blank lines", "[import]") {
    const ParsedImport parsed = parse_subscriber_import(
        "# provisioning export\n"
        "\n"
        "2001:db8:100:1::/64 alice\n"
        "  2001:db8:100:2::/64\tbob   # trailing comment\r\n"
        "2001:db8:100:3::/64 carol@example.net");
    CHECK(parsed.problem_count == 0);
    REQUIRE(parsed.subscribers.size() == 3);
    CHECK(to_string(parsed.subscribers[0].prefix) == "2001:db8:100:1::/64");
    CHECK(parsed.subscribers[0].account == "alice");
    CHECK(parsed.subscribers[0].line == 3);
    CHECK(parsed.subscribers[1].account == "bob");
    CHECK(parsed.subscribers[1].line == 4);
    CHECK(parsed.subscribers[2].account == "carol@example.net");
    CHECK(parsed.subscribers[2].line == 5);
}

TEST_CASE("each mistake names its line and what would be valid", "[import]") {
    CHECK(first_problem("2001:db8::/64 a\n2001:db8:1::/64\n") ==
          "line 2: '2001:db8:1::/64' has no account id; expected PREFIX ACCOUNT, e.g. "
          "2001:db8:100:1::/64 alice");
    CHECK(first_problem("2001:db8::1/64 a\n") ==
          "line 1: '2001:db8::1/64' has host bits set; did you mean 2001:db8::/64?");
    CHECK(first_problem("2001:db8:: a\n") ==
          "line 1: '2001:db8::' has no prefix length; expected PREFIX ACCOUNT, e.g. "
          "2001:db8:100:1::/64 alice");
    CHECK(first_problem("192.0.2.0/24 a\n") ==
          "line 1: '192.0.2.0/24' is not an IPv6 prefix; expected PREFIX ACCOUNT, e.g. "
          "2001:db8:100:1::/64 alice");
    CHECK(first_problem("2001:db8::/129 a\n").find("is not an IPv6 prefix") != std::string::npos);
    CHECK(first_problem("2001:db8::/64 john smith\n") ==
          "line 1: 3 fields; expected PREFIX ACCOUNT, e.g. 2001:db8:100:1::/64 alice (account ids "
          "cannot contain spaces)");
    CHECK(first_problem("2001:db8::/64 a\n\n2001:db8::/64 b\n") ==
          "line 3: 2001:db8::/64 is already on line 1; each subscriber once");
    CHECK(first_problem("2001:db8::/64 " + std::string(254, 'x') + "\n") ==
          "line 1: account id of 254 bytes; at most 253 (RADIUS User-Name)");
    CHECK(first_problem(std::string("2001:db8::/64 a\x01") + "b\n").find("control character") !=
          std::string::npos);
}

TEST_CASE("every problem is counted, the first ones are kept, good lines still parsed",
          "[import]") {
    std::string text;
    for (int i = 0; i < 30; ++i) {
        text += "bad" + std::to_string(i) + " x\n";
    }
    text += "2001:db8::/64 ok\n";
    const ParsedImport parsed = parse_subscriber_import(text, 5);
    CHECK(parsed.problem_count == 30);
    REQUIRE(parsed.problems.size() == 5);
    CHECK(parsed.problems[4].line == 5);
    REQUIRE(parsed.subscribers.size() == 1);
    CHECK(parsed.subscribers[0].line == 31);
}

TEST_CASE("chunks are sent in the canonical form and parse back to the same", "[import]") {
    const ParsedImport parsed = parse_subscriber_import(
        "2001:DB8:0:1:0::/64   alice # x\n2001:db8:0:2::/64 bob\n"
        "2001:db8:0:3::/64 carol\n");
    REQUIRE(parsed.subscribers.size() == 3);
    const std::string chunk = subscriber_import_text(parsed.subscribers, 1, 3);
    CHECK(chunk == "2001:db8:0:2::/64 bob\n2001:db8:0:3::/64 carol\n");
    CHECK(subscriber_import_text(parsed.subscribers, 0, 1) == "2001:db8:0:1::/64 alice\n");
    const ParsedImport again = parse_subscriber_import(chunk);
    REQUIRE(again.subscribers.size() == 2);
    CHECK(again.subscribers[0].prefix == parsed.subscribers[1].prefix);
    CHECK(again.subscribers[1].line == 2);
}
