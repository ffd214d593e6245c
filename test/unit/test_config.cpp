#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "config_issues.h"

using namespace xlat64;
using namespace xlat64::testing;
using Catch::Matchers::Contains;

namespace {

// Config::operator== is deleted: DeviceConfig in config/config.h declares no operator==.
void check_same(const Config& a, const Config& b) {
    CHECK(a.device.name == b.device.name);
    CHECK(a.device.mtu == b.device.mtu);
    CHECK(a.pool6 == b.pool6);
    CHECK(a.eamt == b.eamt);
    CHECK(a.control_socket == b.control_socket);
    CHECK(a.bpf_pin_dir == b.bpf_pin_dir);
}

}  // namespace

TEST_CASE("config: empty files are the default configuration", "[config]") {
    for (const char* text : {"", "\n", "# only a comment\n\n# and another\n", "---\n"}) {
        CAPTURE(text);
        Config config = parse_config(text, "test.yaml");
        check_same(config, Config{});
        CHECK(config.device.name == "xlat64");
        CHECK(config.device.mtu == 1500);
        CHECK_FALSE(config.pool6);
        CHECK(config.eamt.empty());
        CHECK(config.control_socket == "/run/xlat64/control.sock");
        CHECK(config.bpf_pin_dir == "/sys/fs/bpf/xlat64");
    }
}

TEST_CASE("config: a full valid file", "[config]") {
    Config config = parse_config(R"(device:
  name: siit0
  mtu: 9000
pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
  - {ipv4: 198.51.100.16/28, ipv6: 2001:db8:9::/124}
  - ipv4: 192.0.2.1
    ipv6: 2001:db8:2::1/128
control:
  socket: /run/test/ctl.sock
bpf:
  pin_dir: /sys/fs/bpf/test
)",
                                 "test.yaml");
    Config expected;
    expected.device = {"siit0", 9000};
    expected.pool6 = parse_ipv6_prefix("2001:db8:64::/96");
    expected.eamt = {
        {parse_ipv4_prefix("198.51.100.0/24").value(),
         parse_ipv6_prefix("2001:db8:1::/120").value()},
        {parse_ipv4_prefix("198.51.100.16/28").value(),
         parse_ipv6_prefix("2001:db8:9::/124").value()},
        {parse_ipv4_prefix("192.0.2.1/32").value(), parse_ipv6_prefix("2001:db8:2::1/128").value()},
    };
    expected.control_socket = "/run/test/ctl.sock";
    expected.bpf_pin_dir = "/sys/fs/bpf/test";
    check_same(config, expected);
}

TEST_CASE("config: empty sections take the defaults", "[config]") {
    Config config = parse_config("device:\neamt:\ncontrol:\nbpf:\n", "test.yaml");
    check_same(config, Config{});
}

TEST_CASE("config: every pool6 length RFC 6052 allows", "[config]") {
    auto prefix = GENERATE("2001:db8::/32", "2001:db8:100::/40", "2001:db8:122::/48",
                           "2001:db8:122:300::/56", "2001:db8:122:344::/64", "64:ff9b::/96");
    Config config = parse_config(std::string("pool6: ") + prefix, "test.yaml");
    CHECK(config.pool6 == parse_ipv6_prefix(prefix));
}

TEST_CASE("config: each example file parses", "[config]") {
    auto name = GENERATE("ipv6-clients-to-ipv4-content.yaml", "ipv4-clients-to-ipv6-servers.yaml");
    auto path = std::filesystem::path(XLAT64_SOURCE_DIR) / "config" / "examples" / name;
    CAPTURE(path);
    Config config = load_config_file(path);
    CHECK(config.pool6 == parse_ipv6_prefix("2001:db8:64::/96"));
    REQUIRE(config.eamt.size() == 1);
    CHECK(to_string(config.eamt[0].ipv4) == "198.51.100.0/24");
}

TEST_CASE("config: the NAT64 example parses, with as many blocks as it says", "[config]") {
    auto path =
        std::filesystem::path(XLAT64_SOURCE_DIR) / "config" / "examples" / "nat64-subscribers.yaml";
    Config config = load_config_file(path);
    REQUIRE(config.nat64);
    CHECK(nat64_subscriber_count(*config.nat64) == 256);
    CHECK(nat64_block_count(*config.nat64) == 496);
    CHECK(config.nat64->mode == Nat64Mode::deterministic);
}

TEST_CASE("config: a nat64 section must not overlap pool6 or the EAMT", "[config]") {
    auto issues = issues_of(R"(pool6: 2001:db8:64::/96
eamt:
  - ipv4: 100.64.1.0/24
    ipv6: 2001:db8:100:1::/120
nat64:
  prefixes: [2001:db8:64::/48, 2001:db8:100::/48]
  subscriber_length: 56
  public_prefixes: [203.0.113.0/24]
)");
    REQUIRE(issues.size() == 3);
    CHECK(issues[0].key == "nat64.prefixes[0]");
    CHECK_THAT(issues[0].message, Contains("overlaps pool6 2001:db8:64::/96"));
    CHECK(issues[1].key == "nat64.prefixes[1]");
    CHECK_THAT(issues[1].message, Contains("overlaps the EAM entry"));
    CHECK(issues[2].key == "nat64.internal_pool");
    CHECK_THAT(issues[2].message, Contains("overlaps the EAM entry 100.64.1.0/24"));
}

TEST_CASE("config: pool6 length not allowed by RFC 6052", "[config]") {
    auto issue = only_issue("pool6: 2001:db8:64::/80\n");
    CHECK(issue.key == "pool6");
    CHECK(issue.line == 1);
    CHECK(issue.column == 8);
    CHECK(issue.message ==
          "prefix length /80 is not allowed by RFC 6052 section 2.2; use /32, /40, /48, /56, /64 "
          "or /96");
}

TEST_CASE("config: pool6 /96 with a non-zero u octet", "[config]") {
    auto issue = only_issue("pool6: 2001:db8:64:0:ff00::/96\n");
    CHECK(issue.key == "pool6");
    CHECK_THAT(issue.message, Contains("u octet") && Contains("2001:db8:64::/96"));
}

TEST_CASE("config: bad prefixes say what was found and what is valid", "[config]") {
    auto issue = only_issue("eamt:\n  - ipv4: 198.51.100.0/24\n    ipv6: 2001:db8:zz::/120\n");
    CHECK(issue.key == "eamt[0].ipv6");
    CHECK(issue.line == 3);
    CHECK(issue.column == 11);
    CHECK(issue.message ==
          "'2001:db8:zz::/120' is not an IPv6 prefix (expected ADDRESS/LENGTH, e.g. "
          "2001:db8:64::/96)");

    issue = only_issue("pool6: 192.0.2.0/24\n");
    CHECK(issue.key == "pool6");
    CHECK_THAT(issue.message, Contains("is not an IPv6 prefix"));

    issue = only_issue("eamt:\n  - ipv4: 198.51.100.0/33\n    ipv6: 2001:db8:1::/120\n");
    CHECK(issue.key == "eamt[0].ipv4");
    CHECK_THAT(issue.message,
               Contains("'198.51.100.0/33' is not an IPv4 prefix") && Contains("198.51.100.0/24"));
}

TEST_CASE("config: host bits set suggest the masked prefix", "[config]") {
    auto issue = only_issue("eamt:\n  - ipv4: 198.51.100.7/24\n    ipv6: 2001:db8:1::/120\n");
    CHECK(issue.key == "eamt[0].ipv4");
    CHECK(issue.line == 2);
    CHECK(issue.message == "'198.51.100.7/24' has host bits set: did you mean 198.51.100.0/24?");

    issue = only_issue("pool6: 2001:db8:64::1/96\n");
    CHECK(issue.message == "'2001:db8:64::1/96' has host bits set: did you mean 2001:db8:64::/96?");
}

TEST_CASE("config: unknown keys list the valid ones", "[config]") {
    auto issue = only_issue("pool6: 2001:db8:64::/96\npool4: 192.0.2.0/24\n");
    CHECK(issue.key == "pool4");
    CHECK(issue.line == 2);
    CHECK(issue.column == 1);
    CHECK(issue.message ==
          "unknown key 'pool4'; valid keys here: device, pool6, eamt, eamt_file, control, bpf, "
          "nat64, translation, state");

    issue = only_issue("device:\n  nmae: x\n");
    CHECK(issue.key == "device.nmae");
    CHECK(issue.line == 2);
    CHECK(issue.column == 3);
    CHECK_THAT(issue.message, Contains("valid keys here: name, mtu"));

    issue = only_issue("eamt:\n  - ipv4: 198.51.100.0/24\n    ipv6: 2001:db8:1::/120\n    v6: x\n");
    CHECK(issue.key == "eamt[0].v6");
    CHECK(issue.line == 4);
    CHECK_THAT(issue.message, Contains("valid keys here: ipv4, ipv6"));

    CHECK_THAT(only_issue("control:\n  path: /x\n").message, Contains("valid keys here: socket"));
    CHECK_THAT(only_issue("bpf:\n  pin: /x\n").message, Contains("valid keys here: pin_dir"));
}

TEST_CASE("config: duplicate keys", "[config]") {
    auto issue = only_issue("pool6: 2001:db8:64::/96\ndevice: {}\npool6: 2001:db8:65::/96\n");
    CHECK(issue.key == "pool6");
    CHECK(issue.line == 3);
    CHECK_THAT(issue.message, Contains("duplicate key 'pool6'") && Contains("line 1"));

    issue = only_issue("device:\n  mtu: 1500\n  mtu: 9000\n");
    CHECK(issue.key == "device.mtu");
    CHECK(issue.line == 3);
}

TEST_CASE("config: wrong types", "[config]") {
    auto issue = only_issue("device:\n  mtu: large\n");
    CHECK(issue.key == "device.mtu");
    CHECK(issue.line == 2);
    CHECK(issue.column == 8);
    CHECK(issue.message == "expected an integer from 1280 to 65535, found 'large'");

    issue = only_issue("eamt: 5\n");
    CHECK(issue.key == "eamt");
    CHECK(issue.line == 1);
    CHECK(issue.message == "expected a list of {ipv4, ipv6} entries, found a scalar");

    issue = only_issue("device: [a, b]\n");
    CHECK(issue.key == "device");
    CHECK_THAT(issue.message, Contains("expected a map with keys name, mtu, found a list"));

    issue = only_issue("pool6:\n  a: b\n");
    CHECK(issue.key == "pool6");
    CHECK_THAT(issue.message, Contains("expected an IPv6 prefix") && Contains("found a map"));

    issue = only_issue("pool6:\n");
    CHECK(issue.key == "pool6");
    CHECK(issue.line == 1);  // the key's line: an empty value has no line of its own
    CHECK_THAT(issue.message, Contains("found nothing"));
}

TEST_CASE("config: mtu range", "[config]") {
    CHECK(parse_config("device: {mtu: 1280}", "t").device.mtu == 1280);
    CHECK(parse_config("device: {mtu: 65535}", "t").device.mtu == 65535);
    for (const char* mtu :
         {"1279", "65536", "0", "-1500", "1500.0", "0x5dc", "99999999999999999999"}) {
        CAPTURE(mtu);
        auto issue = only_issue(std::string("device:\n  mtu: ") + mtu + "\n");
        CHECK(issue.key == "device.mtu");
        CHECK(issue.message ==
              std::string("expected an integer from 1280 to 65535, found '") + mtu + "'");
    }
}

TEST_CASE("config: device names", "[config]") {
    CHECK(parse_config("device: {name: siit-0.v6}", "t").device.name == "siit-0.v6");
    CHECK(parse_config("device: {name: abcdefghijklmno}", "t").device.name == "abcdefghijklmno");
    for (const char* name :
         {"abcdefghijklmnop", "'a/b'", "'a:b'", "'a b'", "''", "'.'", "'..'", "\"a\\tb\""}) {
        CAPTURE(name);
        auto issue = only_issue(std::string("device:\n  name: ") + name + "\n");
        CHECK(issue.key == "device.name");
        CHECK(issue.line == 2);
        CHECK_THAT(issue.message,
                   Contains("is not a Linux interface name") && Contains("1 to 15 characters"));
    }
}

TEST_CASE("config: control characters in values are escaped in messages", "[config]") {
    auto issue = only_issue("pool6: \"2001:db8::/32\\nx\"\n");
    CHECK(issue.message.find('\n') == std::string::npos);
    CHECK_THAT(issue.message, Contains("'2001:db8::/32\\x0ax'"));
}

TEST_CASE("config: paths must be absolute", "[config]") {
    auto issue = only_issue("control:\n  socket: run/xlat64.sock\n");
    CHECK(issue.key == "control.socket");
    CHECK(issue.line == 2);
    CHECK_THAT(issue.message, Contains("'run/xlat64.sock' is not an absolute path"));

    issue = only_issue("bpf:\n  pin_dir: xlat64\n");
    CHECK(issue.key == "bpf.pin_dir");
    CHECK_THAT(issue.message, Contains("is not an absolute path"));

    issue = only_issue("control:\n  socket: /" + std::string(107, 'a') + "\n");
    CHECK(issue.key == "control.socket");
    CHECK_THAT(issue.message, Contains("at most 107"));
    CHECK(parse_config("control:\n  socket: /" + std::string(106, 'a'), "t")
              .control_socket.native()
              .size() == 107);
}

TEST_CASE("config: EAMT entries that are not maps or miss a side", "[config]") {
    auto issue = only_issue("eamt:\n  - 198.51.100.0/24\n");
    CHECK(issue.key == "eamt[0]");
    CHECK(issue.line == 2);
    CHECK(issue.message == "expected a map with keys ipv4 and ipv6, found '198.51.100.0/24'");

    issue = only_issue(
        "eamt:\n  - ipv4: 198.51.100.0/24\n    ipv6: 2001:db8:1::/120\n"
        "  - ipv4: 203.0.113.0/24\n");
    CHECK(issue.key == "eamt[1]");
    CHECK(issue.line == 4);
    CHECK(issue.column == 5);
    CHECK_THAT(issue.message, Contains("no ipv6"));

    issue = only_issue("eamt:\n  - ipv6: 2001:db8:1::/120\n");
    CHECK(issue.key == "eamt[0]");
    CHECK_THAT(issue.message, Contains("no ipv4"));
}

TEST_CASE("config: EAM suffix lengths must be equal", "[config]") {
    auto issue = only_issue("eamt:\n  - ipv4: 198.51.100.0/24\n    ipv6: 2001:db8:1::/64\n");
    CHECK(issue.key == "eamt[0].ipv6");
    CHECK(issue.line == 3);
    CHECK(issue.message ==
          "198.51.100.0/24 has 8 host bits but 2001:db8:1::/64 has 64; an EAM maps each address "
          "one to one, so use 2001:db8:1::/120");
}

TEST_CASE("config: the same prefix in two EAM entries", "[config]") {
    auto issue = only_issue(R"(pool6: 2001:db8:64::/96
eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:5::/120
)");
    CHECK(issue.key == "eamt[1].ipv4");
    CHECK(issue.line == 5);
    CHECK(issue.column == 11);
    CHECK(issue.message == "198.51.100.0/24 is already mapped by eamt[0] (line 3)");

    issue = only_issue(R"(eamt:
  - ipv4: 198.51.100.0/24
    ipv6: 2001:db8:1::/120
  - ipv4: 203.0.113.0/24
    ipv6: 2001:db8:1::/120
)");
    CHECK(issue.key == "eamt[1].ipv6");
    CHECK(issue.line == 5);
    CHECK(issue.message == "2001:db8:1::/120 is already mapped by eamt[0] (line 3)");
}

TEST_CASE("config: nested EAM prefixes are allowed (longest match)", "[config]") {
    Config config = parse_config(R"(eamt:
  - {ipv4: 198.51.100.0/24, ipv6: 2001:db8:1::/120}
  - {ipv4: 198.51.100.0/25, ipv6: 2001:db8:2::/121}
  - {ipv4: 203.0.113.0/32, ipv6: 2001:db8:1::/128}
)",
                                 "t");
    CHECK(config.eamt.size() == 3);
}

TEST_CASE("config: an EAM IPv6 prefix inside pool6", "[config]") {
    auto issue = only_issue(
        "pool6: 2001:db8:64::/96\neamt:\n  - ipv4: 198.51.100.0/24\n"
        "    ipv6: 2001:db8:64::/120\n");
    CHECK(issue.key == "eamt[0].ipv6");
    CHECK(issue.line == 4);
    CHECK(issue.message ==
          "2001:db8:64::/120 overlaps pool6 2001:db8:64::/96; pool6 addresses must keep meaning "
          "IPv4 addresses");
    // Order in the file does not matter.
    issue = only_issue(
        "eamt:\n  - {ipv4: 198.51.100.0/24, ipv6: 2001:db8:64::100/120}\n"
        "pool6: 2001:db8:64::/96\n");
    CHECK(issue.key == "eamt[0].ipv6");
}

TEST_CASE("config: every issue is reported, in file order", "[config]") {
    std::string text = R"(device:
  name: bad/name
  mtu: 80
pool6: 2001:db8:64::/80
pool4: 192.0.2.0/24
eamt:
  - ipv4: 198.51.100.1/24
    ipv6: 2001:db8:1::/64
  - 5
control:
  socket: relative.sock
)";
    auto issues = issues_of(text);
    std::vector<std::pair<std::string, int>> found;
    for (const auto& issue : issues) {
        found.emplace_back(issue.key, issue.line);
    }
    CHECK(found == std::vector<std::pair<std::string, int>>{
                       {"device.name", 2},
                       {"device.mtu", 3},
                       {"pool6", 4},
                       {"pool4", 5},
                       {"eamt[0].ipv4", 7},
                       {"eamt[1]", 9},
                       {"control.socket", 11},
                   });
}

TEST_CASE("config: what() has one line per issue", "[config]") {
    try {
        parse_config("pool6: 2001:db8:64::/80\npool4: x\n", "/etc/xlat64/xlat64.yaml");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) ==
              "/etc/xlat64/xlat64.yaml:1:8: pool6: prefix length /80 is not allowed by RFC 6052 "
              "section 2.2; use /32, /40, /48, /56, /64 or /96\n"
              "/etc/xlat64/xlat64.yaml:2:1: pool4: unknown key 'pool4'; valid keys here: device, "
              "pool6, eamt, eamt_file, control, bpf, nat64, translation, state");
    }
    ConfigError no_position("f.yaml", {{"(file)", 0, 0, "cannot read f.yaml: gone"}});
    CHECK(std::string(no_position.what()) == "f.yaml: (file): cannot read f.yaml: gone");
}

TEST_CASE("config: YAML syntax errors and non-map documents", "[config]") {
    auto issue = only_issue("eamt: [1, 2\n");
    CHECK(issue.key == "(file)");
    CHECK(issue.line == 2);
    CHECK_THAT(issue.message, Contains("YAML syntax error"));

    issue = only_issue("pool6: 2001:db8:64::/96\n  bad indent: x\n");
    CHECK(issue.key == "(file)");
    CHECK(issue.line >= 1);

    issue = only_issue("- a\n- b\n");
    CHECK(issue.key == "(file)");
    CHECK(issue.line == 1);
    CHECK_THAT(issue.message, Contains("expected a map") && Contains("found a list"));

    issue = only_issue("just text\n");
    CHECK_THAT(issue.message, Contains("found 'just text'"));

    issue = only_issue("pool6: 2001:db8:64::/96\n---\npool6: 2001:db8:65::/96\n");
    CHECK(issue.key == "(file)");
    CHECK_THAT(issue.message, Contains("second YAML document"));
}

TEST_CASE("config: load_config_file reports an unreadable file", "[config]") {
    for (const char* path : {"/nonexistent/xlat64.yaml", "/"}) {
        CAPTURE(path);
        try {
            load_config_file(path);
            FAIL("accepted");
        } catch (const ConfigError& e) {
            REQUIRE(e.issues().size() == 1);
            CHECK(e.issues()[0].line == 0);
            CHECK_THAT(e.issues()[0].message, Contains(std::string("cannot read ") + path + ": "));
            CHECK_THAT(std::string(e.what()), !Contains(":0:"));
        }
    }
}

TEST_CASE("config: load_config_file names the file in every issue", "[config]") {
    auto path = std::filesystem::temp_directory_path() /
                ("xlat64-test-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream(path) << "pool6: 2001:db8:64::/80\n";
    try {
        load_config_file(path);
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK_THAT(std::string(e.what()), Contains(path.string() + ":1:8: pool6: "));
    }
    std::filesystem::remove(path);
}

// --- translation: (issue 3, RFC 7915 options) ------------------------------------------------

TEST_CASE("config: translation options take their defaults", "[config][translation]") {
    Config config = parse_config("translation:\n", "t");
    CHECK(config.translation == TranslationConfig{});
    CHECK(config.translation.lowest_ipv6_mtu == 1280);
    CHECK_FALSE(config.translation.drop_udp_zero_checksum);
    CHECK_FALSE(config.translation.traffic_class);
    CHECK_FALSE(config.translation.allow_wkp_non_global);
    CHECK_FALSE(config.translation.ipv4_address);
    CHECK_FALSE(config.translation.rfc6791_pool4);
}

TEST_CASE("config: every translation option is read", "[config][translation]") {
    Config config = parse_config(R"(translation:
  lowest_ipv6_mtu: 1500
  udp_zero_checksum: drop
  traffic_class: 46
  allow_wkp_non_global: true
  ipv4_address: 192.0.2.1
  ipv6_address: 2001:db8::1
  rfc6791_pool4: 198.51.100.0/28
  rfc6791_pool6: 2001:db8:6791::/96
)",
                                 "t");
    const TranslationConfig& t = config.translation;
    CHECK(t.lowest_ipv6_mtu == 1500);
    CHECK(t.drop_udp_zero_checksum);
    CHECK(t.traffic_class == std::optional<uint8_t>(46));
    CHECK(t.allow_wkp_non_global);
    CHECK(t.ipv4_address == parse_ipv4_address("192.0.2.1"));
    CHECK(t.ipv6_address == parse_ipv6_address("2001:db8::1"));
    CHECK(t.rfc6791_pool4 == parse_ipv4_prefix("198.51.100.0/28"));
    CHECK(t.rfc6791_pool6 == parse_ipv6_prefix("2001:db8:6791::/96"));
    CHECK_FALSE(parse_config("translation: {traffic_class: copy}", "t").translation.traffic_class);
    CHECK(parse_config("translation: {udp_zero_checksum: compute}", "t")
              .translation.drop_udp_zero_checksum == false);
}

TEST_CASE("config: invalid translation options are named with what is valid",
          "[config][translation]") {
    auto issue = only_issue("translation:\n  lowest_ipv6_mtu: 1000\n");
    CHECK(issue.key == "translation.lowest_ipv6_mtu");
    CHECK(issue.line == 2);
    CHECK(issue.column == 20);
    CHECK(issue.message == "expected an integer from 1280 to 65535, found '1000'");

    issue = only_issue("translation:\n  udp_zero_checksum: fix\n");
    CHECK(issue.key == "translation.udp_zero_checksum");
    CHECK(issue.message == "expected one of compute, drop, found 'fix'");

    issue = only_issue("translation:\n  traffic_class: 256\n");
    CHECK(issue.key == "translation.traffic_class");
    CHECK(issue.message == "expected copy or an integer from 0 to 255, found '256'");

    issue = only_issue("translation:\n  allow_wkp_non_global: yes\n");
    CHECK(issue.key == "translation.allow_wkp_non_global");
    CHECK(issue.message == "expected true or false, found 'yes'");

    issue = only_issue("translation:\n  ipv4_address: 192.0.2.300\n");
    CHECK(issue.key == "translation.ipv4_address");
    CHECK(issue.message == "'192.0.2.300' is not an IPv4 address, e.g. 192.0.2.1");

    issue = only_issue("translation:\n  ipv6_address: 192.0.2.1\n");
    CHECK(issue.message == "'192.0.2.1' is not an IPv6 address, e.g. 2001:db8::1");

    issue = only_issue("translation:\n  rfc6791_pool4: 198.51.100.1/28\n");
    CHECK(issue.key == "translation.rfc6791_pool4");
    CHECK_THAT(issue.message, Contains("has host bits set: did you mean 198.51.100.0/28?"));

    issue = only_issue("translation:\n  rfc6791_pool: 2001:db8::/96\n");
    CHECK(issue.key == "translation.rfc6791_pool");
    CHECK_THAT(issue.message, Contains("valid keys here: lowest_ipv6_mtu, udp_zero_checksum"));
}

TEST_CASE("config: the state section", "[config]") {
    Config defaults = parse_config("", "t.yaml");
    CHECK(defaults.state.directory == "/var/lib/xlat64");
    CHECK(defaults.state.retention_days == 365);
    CHECK_FALSE(defaults.state.log_file);

    Config c = parse_config(
        "state:\n  directory: /srv/xlat64\n  retention_days: 730\n"
        "  log_file: /var/log/xlat64/allocations.log\n",
        "t.yaml");
    CHECK(c.state.directory == "/srv/xlat64");
    CHECK(c.state.retention_days == 730);
    CHECK(c.state.log_file == std::filesystem::path("/var/log/xlat64/allocations.log"));

    auto relative = only_issue("state:\n  directory: var/lib/xlat64\n");
    CHECK(relative.key == "state.directory");
    CHECK(relative.line == 2);
    auto zero = only_issue("state:\n  retention_days: 0\n");
    CHECK(zero.key == "state.retention_days");
}

TEST_CASE("config: runtime EAM entries follow the file's rules", "[config]") {
    Config config = parse_config(R"(pool6: 2001:db8:64::/96
eamt:
  - ipv4: 192.0.2.0/24
    ipv6: 2001:db8:2::100/120
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  public_prefixes: [203.0.113.0/28]
)",
                                 "t.yaml");
    auto eam = [](const char* v4, const char* v6) {
        return EamEntry{*parse_ipv4_prefix(v4), *parse_ipv6_prefix(v6)};
    };
    CHECK_FALSE(eam_conflict(config, eam("198.51.100.0/24", "2001:db8:2::/120")));
    CHECK_THAT(*eam_conflict(config, eam("192.0.2.0/24", "2001:db8:3::/120")),
               Contains("is already mapped"));
    CHECK_THAT(*eam_conflict(config, eam("198.51.100.0/24", "2001:db8:2::100/120")),
               Contains("is already mapped"));
    CHECK_THAT(*eam_conflict(config, eam("198.51.100.0/24", "2001:db8:64::/120")),
               Contains("overlaps pool6"));
    CHECK_THAT(*eam_conflict(config, eam("198.51.100.0/24", "2001:db8:100::/120")),
               Contains("overlaps the NAT64 prefix"));
    CHECK_THAT(*eam_conflict(config, eam("100.64.0.0/24", "2001:db8:2::/120")),
               Contains("overlaps the NAT64 internal pool"));
    CHECK_THAT(*eam_conflict(config, eam("198.51.100.0/25", "2001:db8:2::/120")),
               Contains("same number of host bits"));
}

// --- eamt_file: (issue 7, EAMTs too large for YAML) -------------------------------------------

namespace {

// A file under the temporary directory holding TEXT, removed with the object.
class TempFile {
  public:
    explicit TempFile(const std::string& text)
        : path_(std::filesystem::temp_directory_path() /
                ("xlat64-eamt-" + std::to_string(::getpid()) + "-" + std::to_string(++count_))) {
        std::ofstream(path_) << text;
    }
    ~TempFile() { std::filesystem::remove(path_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    std::string path() const { return path_.string(); }

  private:
    static inline int count_ = 0;
    std::filesystem::path path_;
};

EamEntry eam(const char* v4, const char* v6) {
    return {*parse_ipv4_prefix(v4), *parse_ipv6_prefix(v6)};
}

}  // namespace

TEST_CASE("config: eamt_file entries follow those of eamt", "[config][eamt_file]") {
    TempFile file(
        "# servers\n"
        "192.0.2.0/28\t2001:db8:46::/124   # web\n"
        "\n"
        "   198.51.100.7/32 2001:db8:1::7/128\r\n");
    Config config = parse_config(
        "eamt:\n  - {ipv4: 203.0.113.0/24, ipv6: 2001:db8:2::/120}\n"
        "eamt_file: " +
            file.path() + "\n",
        "t");
    CHECK(config.eamt_file == std::filesystem::path(file.path()));
    CHECK(config.eamt == std::vector<EamEntry>{eam("203.0.113.0/24", "2001:db8:2::/120"),
                                               eam("192.0.2.0/28", "2001:db8:46::/124"),
                                               eam("198.51.100.7/32", "2001:db8:1::7/128")});
}

TEST_CASE("config: eamt_file problems name the file and the line", "[config][eamt_file]") {
    TempFile file(
        "192.0.2.0/28 2001:db8:46::/124\n"
        "192.0.2.1/28 2001:db8:47::/124\n"     // host bits
        "192.0.2.16/28\n"                      // one field
        "192.0.2.32/28 2001:db8:48::/64\n"     // suffix lengths differ
        "192.0.2.0/28 2001:db8:49::/124\n"     // same IPv4 prefix as line 1
        "192.0.2.48/28 2001:db8:64::/124\n");  // overlaps pool6
    try {
        parse_config("pool6: 2001:db8:64::/96\neamt_file: " + file.path() + "\n", "c.yaml");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        const auto& issues = e.issues();
        REQUIRE(issues.size() == 5);
        for (const ConfigIssue& issue : issues) {
            CHECK(issue.file == file.path());
            CHECK(issue.key == "eamt_file");
        }
        CHECK(issues[0].line == 2);
        CHECK(issues[0].message == "'192.0.2.1/28' has host bits set: did you mean 192.0.2.0/28?");
        CHECK(issues[1].line == 3);
        CHECK_THAT(issues[1].message, Contains("expected IPV4-PREFIX IPV6-PREFIX"));
        CHECK_THAT(issues[1].message, Contains("found 1 field"));
        CHECK(issues[2].line == 4);
        CHECK_THAT(issues[2].message, Contains("so use 2001:db8:48::/124"));
        CHECK(issues[3].line == 5);
        CHECK(issues[3].message == "192.0.2.0/28 is already mapped by line 1 of " + file.path());
        CHECK(issues[4].line == 6);
        CHECK_THAT(issues[4].message, Contains("overlaps pool6 2001:db8:64::/96"));
        CHECK_THAT(std::string(e.what()),
                   Contains(file.path() + ":2: eamt_file: '192.0.2.1/28' has host bits set"));
    }
}

TEST_CASE("config: an entry of eamt and one of eamt_file with the same prefix",
          "[config][eamt_file]") {
    TempFile file("198.51.100.0/24 2001:db8:1::/120\n");
    auto issues = issues_of(
        "eamt:\n  - ipv4: 203.0.113.0/24\n    ipv6: 2001:db8:1::/120\n"
        "eamt_file: " +
        file.path() + "\n");
    REQUIRE(issues.size() == 1);
    CHECK(issues[0].file == file.path());
    CHECK(issues[0].line == 1);
    CHECK(issues[0].message == "2001:db8:1::/120 is already mapped by eamt[0] (line 3)");
}

TEST_CASE("config: eamt_file must be readable and absolute", "[config][eamt_file]") {
    auto issue = only_issue("eamt_file: /nonexistent/xlat64-eamt.txt\n");
    CHECK(issue.file == "/nonexistent/xlat64-eamt.txt");
    CHECK_THAT(issue.message,
               Contains("cannot read /nonexistent/xlat64-eamt.txt: No such file or directory"));
    issue = only_issue("eamt_file: eamt.txt\n");
    CHECK(issue.key == "eamt_file");
    CHECK_THAT(issue.message, Contains("is not an absolute path"));
}

TEST_CASE("config: a wrong eamt_file lists its first problems only", "[config][eamt_file]") {
    std::string text;
    for (int i = 0; i < 1000; ++i) {
        text += "garbage line\n";
    }
    TempFile file(text);
    auto issues = issues_of("eamt_file: " + file.path() + "\n");
    REQUIRE(issues.size() == 21);
    CHECK(issues[19].line == 20);
    CHECK(issues.back().message == "980 more lines have problems; only the first 20 are listed");
}

TEST_CASE("config: a NAT64 prefix overlapping many EAM entries is reported once",
          "[config][eamt_file]") {
    std::string text;
    for (int i = 0; i < 256; ++i) {
        text +=
            "192.0.2." + std::to_string(i) + "/32 2001:db8:100::" + std::to_string(i) + "/128\n";
    }
    TempFile file(text);
    auto issues = issues_of("eamt_file: " + file.path() + R"(
nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  internal_pool: 100.64.0.0/16
  public_prefixes: [203.0.113.0/28]
)");
    REQUIRE(issues.size() == 1);
    CHECK(issues[0].key == "nat64.prefixes[0]");
    CHECK_THAT(issues[0].message,
               Contains("overlaps the EAM entry 192.0.2.0/32 <-> 2001:db8:100::/128 (and 255 "
                        "more)"));
}

// --- translation.ingress_interfaces (the ingress fast path) -----------------------------------

TEST_CASE("config: ingress_interfaces defaults to none", "[config][ingress]") {
    CHECK(parse_config("", "t").ingress_interfaces.empty());
    CHECK(parse_config("translation:\n  ingress_interfaces:\n", "t").ingress_interfaces.empty());
    CHECK(parse_config("translation: {ingress_interfaces: []}", "t").ingress_interfaces.empty());
}

TEST_CASE("config: ingress_interfaces is read in order", "[config][ingress]") {
    Config config = parse_config(R"(translation:
  ingress_interfaces: [eth1, ppp0]
)",
                                 "t");
    CHECK(config.ingress_interfaces == std::vector<std::string>{"eth1", "ppp0"});
    config = parse_config("translation:\n  ingress_interfaces:\n    - eth0.100\n    - wg0\n", "t");
    CHECK(config.ingress_interfaces == std::vector<std::string>{"eth0.100", "wg0"});
    // Interfaces are not looked up: the file is checked without the kernel.
    CHECK(parse_config("translation: {ingress_interfaces: [nosuchif9]}", "t").ingress_interfaces ==
          std::vector<std::string>{"nosuchif9"});
    // The options the program reads are not affected.
    CHECK(config.translation == TranslationConfig{});
}

TEST_CASE("config: ingress_interfaces names must be interface names", "[config][ingress]") {
    for (const char* name : {"abcdefghijklmnop", "'a/b'", "'a b'", "''", "'..'", "\"a\\tb\""}) {
        CAPTURE(name);
        auto issue = only_issue(
            std::string("translation:\n  ingress_interfaces:\n    - eth1\n    - ") + name + "\n");
        CHECK(issue.key == "translation.ingress_interfaces[1]");
        CHECK(issue.line == 4);
        CHECK(issue.column == 7);
        CHECK_THAT(issue.message,
                   Contains("is not a Linux interface name") && Contains("1 to 15 characters"));
    }
    auto issue = only_issue("translation:\n  ingress_interfaces: [eth1, [eth2]]\n");
    CHECK(issue.key == "translation.ingress_interfaces[1]");
    CHECK_THAT(issue.message, Contains("a Linux interface name, e.g. eth1"));
}

TEST_CASE("config: ingress_interfaces must be a list", "[config][ingress]") {
    auto issue = only_issue("translation:\n  ingress_interfaces: eth1\n");
    CHECK(issue.key == "translation.ingress_interfaces");
    CHECK(issue.line == 2);
    CHECK(issue.message == "expected a list of interface names, e.g. [eth1, eth2], found 'eth1'");
}

TEST_CASE("config: an ingress interface listed twice", "[config][ingress]") {
    auto issue =
        only_issue("translation:\n  ingress_interfaces:\n    - eth1\n    - eth2\n    - eth1\n");
    CHECK(issue.key == "translation.ingress_interfaces[2]");
    CHECK(issue.line == 5);
    CHECK(issue.message ==
          "eth1 is already listed as translation.ingress_interfaces[0] (line 3); list each "
          "interface once");
}

TEST_CASE("config: xlat64's own device is no ingress interface", "[config][ingress]") {
    auto issue = only_issue("translation:\n  ingress_interfaces: [eth1, xlat64]\n");
    CHECK(issue.key == "translation.ingress_interfaces[1]");
    CHECK_THAT(issue.message, Contains("xlat64 is xlat64's own device (device.name)"));
    // With another device name, that name is refused and "xlat64" is an ordinary interface.
    issue = only_issue("device: {name: siit0}\ntranslation:\n  ingress_interfaces: [siit0]\n");
    CHECK_THAT(issue.message, Contains("siit0 is xlat64's own device"));
    CHECK(parse_config("device: {name: siit0}\ntranslation: {ingress_interfaces: [xlat64]}", "t")
              .ingress_interfaces.size() == 1);
}

TEST_CASE("config: ingress_interfaces issues are reported with the others", "[config][ingress]") {
    auto issues = issues_of(
        "pool6: 2001:db8:64::/80\ntranslation:\n  lowest_ipv6_mtu: 1\n"
        "  ingress_interfaces: [eth1, eth1]\n");
    REQUIRE(issues.size() == 3);
    CHECK(issues[0].key == "pool6");
    CHECK(issues[1].key == "translation.lowest_ipv6_mtu");
    CHECK(issues[2].key == "translation.ingress_interfaces[1]");
    CHECK(issues[2].line == 4);
}
