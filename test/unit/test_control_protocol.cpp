// Framing, dispatch and access rules of the control protocol (daemon/control_protocol.h).
#include <catch2/catch.hpp>

#include "daemon/control_protocol.h"

using namespace xlat64;
using nlohmann::json;

namespace {

CommandTable sample_commands() {
    CommandTable table;
    table["status"] = Command{Access::read, [](const Request&) { return json{{"pid", 1}}; }};
    table["reload"] = Command{Access::admin, [](const Request&) { return json::object(); }};
    table["broken"] = Command{
        Access::read, [](const Request&) -> json { throw std::runtime_error("map read failed"); }};
    return table;
}

json parse(const std::string& line) {
    REQUIRE(!line.empty());
    REQUIRE(line.back() == '\n');
    return json::parse(line);
}

}  // namespace

TEST_CASE("responses are one JSON object per line") {
    CHECK(parse(ok_response({{"a", 1}})) == json{{"ok", true}, {"result", {{"a", 1}}}});
    CHECK(parse(error_response("nope")) == json{{"ok", false}, {"error", "nope"}});
    CHECK(make_request("stats") == "{\"command\":\"stats\"}\n");
}

TEST_CASE("invalid UTF-8 from a peer does not break the response") {
    const std::string reply = error_response("unknown command \"\xff\"");
    CHECK(parse(reply)["ok"] == false);
}

TEST_CASE("requests must be objects with a command string") {
    CHECK(parse_request(R"({"command":"status"})").command == "status");
    CHECK_THROWS_WITH(parse_request("status"), "request is not valid JSON");
    CHECK_THROWS_WITH(parse_request("[1]"), "request must be a JSON object");
    CHECK_THROWS_WITH(parse_request(R"({"command":5})"), "request needs a \"command\" string");
}

TEST_CASE("responses parse on the client side") {
    Response ok = parse_response(R"({"ok":true,"result":{"x":1}})");
    CHECK(ok.ok);
    CHECK(ok.result["x"] == 1);
    Response failed = parse_response(R"({"ok":false,"error":"boom"})");
    CHECK_FALSE(failed.ok);
    CHECK(failed.error == "boom");
    CHECK_THROWS_AS(parse_response("garbage"), ProtocolError);
    CHECK_THROWS_AS(parse_response(R"({"ok":"yes"})"), ProtocolError);
}

TEST_CASE("dispatch: known, unknown, failing and forbidden commands") {
    const CommandTable commands = sample_commands();
    Reply status = dispatch(commands, R"({"command":"status"})", Access::read);
    CHECK(parse(status.line)["result"]["pid"] == 1);
    CHECK_FALSE(status.close);

    Reply unknown = dispatch(commands, R"({"command":"nope"})", Access::admin);
    CHECK(parse(unknown.line)["error"] ==
          "unknown command \"nope\" (known: broken, reload, status)");
    CHECK_FALSE(unknown.close);

    Reply broken = dispatch(commands, R"({"command":"broken"})", Access::read);
    CHECK(parse(broken.line)["error"] == "map read failed");
    CHECK_FALSE(broken.close);

    Reply forbidden = dispatch(commands, R"({"command":"reload"})", Access::read);
    CHECK(parse(forbidden.line)["error"] == "permission denied: \"reload\" needs root");

    Reply stranger = dispatch(commands, R"({"command":"status"})", Access::none);
    CHECK(parse(stranger.line)["ok"] == false);
}

TEST_CASE("dispatch closes the connection on garbage") {
    Reply garbage = dispatch(sample_commands(), "\x01\x02", Access::admin);
    CHECK(garbage.close);
    CHECK(parse(garbage.line)["ok"] == false);
}

TEST_CASE("peer access: root changes, group xlat64 reads, others nothing") {
    const gid_t group = 990;
    CHECK(peer_access(PeerCredentials{1, 0, 0, {}}, std::nullopt) == Access::admin);
    CHECK(peer_access(PeerCredentials{1, 1000, 990, {}}, group) == Access::read);
    CHECK(peer_access(PeerCredentials{1, 1000, 1000, {27, 990}}, group) == Access::read);
    CHECK(peer_access(PeerCredentials{1, 1000, 1000, {27}}, group) == Access::none);
    CHECK(peer_access(PeerCredentials{1, 1000, 990, {}}, std::nullopt) == Access::none);
    CHECK(peer_access(PeerCredentials{}, group) == Access::none);
}

TEST_CASE("line buffer: splits lines, strips CR, bounds line length") {
    LineBuffer buffer(8);
    REQUIRE(buffer.append("ab\r\ncd"));
    CHECK(buffer.next_line() == "ab");
    CHECK_FALSE(buffer.next_line());
    REQUIRE(buffer.append("ef\n"));
    CHECK(buffer.next_line() == "cdef");

    LineBuffer bounded(8);
    CHECK(bounded.append("12345678"));
    CHECK_FALSE(bounded.append("9"));

    LineBuffer many(8);
    CHECK(many.append("1234567\n1234567\n"));  // the bound is per line, not per read
}

TEST_CASE("stats result: every counter, totals split by drop, events in no total") {
    const json stats = stats_result({
        {"translated_6to4", 10, 1000, false, "6 to 4"},
        {"translated_4to6", 5, 500, false, "4 to 6"},
        {"no_source_mapping", 3, 300, true, "no source"},
        {"nat64_hosts_added", 2, 0, false, "hosts", true},
    });
    REQUIRE(stats["counters"].size() == 4);
    CHECK(stats["counters"][2] == json{{"name", "no_source_mapping"},
                                       {"packets", 3},
                                       {"bytes", 300},
                                       {"drop", true},
                                       {"event", false},
                                       {"help", "no source"}});
    CHECK(stats["counters"][3]["event"] == true);
    CHECK(stats["totals"] == json{{"translated", 15}, {"dropped", 3}});
}

TEST_CASE("a refused reload reaches the client with every issue line intact") {
    const std::string issues =
        "/etc/xlat64/xlat64.yaml is invalid; the running configuration is kept:\n"
        "/etc/xlat64/xlat64.yaml:6:11: eamt[1].ipv6: use 2001:db8:2::/120\n"
        "/etc/xlat64/xlat64.yaml:7:3: pool4: unknown key";
    CommandTable table;
    table["reload"] =
        Command{Access::admin, [&](const Request&) -> json { throw std::runtime_error(issues); }};
    Reply reply = dispatch(table, R"({"command":"reload"})", Access::admin);
    CHECK_FALSE(reply.close);
    // One line on the wire (the newlines are escaped), the same text after parsing.
    CHECK(reply.line.find('\n') == reply.line.size() - 1);
    Response response = parse_response(reply.line.substr(0, reply.line.size() - 1));
    CHECK_FALSE(response.ok);
    CHECK(response.error == issues);

    table["reload"] = Command{Access::admin, [](const Request&) {
                                  return json{{"config_file", "/x.yaml"}, {"changes", 2}};
                              }};
    Response applied =
        parse_response(dispatch(table, R"({"command":"reload"})", Access::admin).line);
    CHECK(applied.ok);
    CHECK(applied.result["changes"] == 2);
}
