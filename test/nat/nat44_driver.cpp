// Test driver for the NAT44 table (not the daemon): programs xlat64's nftables table in the
// network namespace it runs in, so the e2e tests can check the kernel's NAT without BPF.
//
//   nat44_driver [--table NAME] [--internal-pool PREFIX] [--block-len N] [--block-ports N]
//                [--device IFNAME] [--trusted IFNAME[,IFNAME...]] CMD
//
// --device (default xlat64) and --trusted: where internal sources may arrive, the daemon's device
// (by name) and ingress fast path interfaces (by index: each IFNAME must exist); from any other
// interface they are dropped as spoofed.
//
//   ensure                             "created" or "adopted"
//   replace INTERNAL=PUBLIC:FIRST-LAST...  e.g. 100.64.0.0/30=203.0.113.1:1024-2047
//   list                               one line per block: INTERNAL PUBLIC FIRST-LAST SESSIONS
//   BYTES drops                              packets dropped from internal sources without a block
//   forward-drops                      packets dropped towards the pool (not replies, not hairpin)
//   spoofed-drops                      packets from the pool dropped as from an untrusted interface
//   exhausted                          one line per refused block and protocol: BLOCK PROTO COUNT
//   hairpins                           one line per entry: PROTO PUBLIC:PORT INTERNAL:PORT
//   delete                             "deleted" or "absent"
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "netlink/nft_nat_table.h"

using namespace xlat64;

namespace {

NatBlock parse_block(const std::string& text) {
    auto eq = text.find('=');
    auto colon = text.find(':', eq);
    auto dash = text.find('-', colon);
    if (eq == std::string::npos || colon == std::string::npos || dash == std::string::npos) {
        throw std::invalid_argument("expected INTERNAL=PUBLIC:FIRST-LAST, found " + text);
    }
    auto internal = parse_ipv4_prefix(text.substr(0, eq));
    auto address = parse_ipv4_address(text.substr(eq + 1, colon - eq - 1));
    unsigned first = std::stoul(text.substr(colon + 1, dash - colon - 1));
    unsigned last = std::stoul(text.substr(dash + 1));
    if (!internal || !address || first > last || last > 65535) {
        throw std::invalid_argument("expected INTERNAL=PUBLIC:FIRST-LAST, found " + text);
    }
    return {*internal, *address, static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

std::string proto_name(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP:
            return "tcp";
        case IPPROTO_UDP:
            return "udp";
        case IPPROTO_ICMP:
            return "icmp";
        default:
            return std::to_string(proto);
    }
}

int run(std::vector<std::string> args) {
    std::string table = "xlat64";
    NftNatShape shape{{{100, 64, 0, 0}, 10}, 30, 1024, true, "xlat64"};
    while (args.size() >= 2 && args[0].rfind("--", 0) == 0) {
        if (args[0] == "--table") {
            table = args[1];
        } else if (args[0] == "--internal-pool") {
            shape.internal_pool = parse_ipv4_prefix(args[1]).value();
        } else if (args[0] == "--block-len") {
            shape.block_len = static_cast<uint8_t>(std::stoul(args[1]));
        } else if (args[0] == "--block-ports") {
            shape.block_ports = static_cast<uint32_t>(std::stoul(args[1]));
        } else if (args[0] == "--device") {
            shape.trusted_device = args[1];
        } else if (args[0] == "--trusted") {
            for (size_t start = 0; start <= args[1].size();) {
                size_t comma = std::min(args[1].find(',', start), args[1].size());
                const std::string name = args[1].substr(start, comma - start);
                const unsigned ifindex = if_nametoindex(name.c_str());
                if (ifindex == 0) {
                    throw std::invalid_argument("--trusted: no interface " + name);
                }
                shape.trusted_ifindexes.push_back(ifindex);
                start = comma + 1;
            }
        } else {
            throw std::invalid_argument("unknown option " + args[0]);
        }
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.empty()) {
        throw std::invalid_argument(
            "expected a command: ensure, replace, list, drops, "
            "forward-drops, spoofed-drops, exhausted, hairpins, delete");
    }
    NftSocket sock;
    NftNatTable nat(sock, table, shape);
    const std::string& command = args[0];
    if (command == "ensure") {
        std::cout << (nat.ensure() ? "created" : "adopted") << "\n";
    } else if (command == "replace") {
        std::vector<NatBlock> blocks;
        for (size_t i = 1; i < args.size(); ++i) {
            blocks.push_back(parse_block(args[i]));
        }
        nat.replace_blocks(blocks);
    } else if (command == "list") {
        for (const NatBlockCounter& c : nat.read_blocks()) {
            std::cout << to_string(c.block.internal) << " " << to_string(c.block.public_address)
                      << " " << c.block.first_port << "-" << c.block.last_port << " " << c.sessions
                      << " " << c.bytes << "\n";
        }
    } else if (command == "drops") {
        std::cout << nat.unmapped_drops() << "\n";
    } else if (command == "forward-drops") {
        std::cout << nat.forward_drops() << "\n";
    } else if (command == "spoofed-drops") {
        std::cout << nat.spoofed_source_drops().packets << "\n";
    } else if (command == "exhausted") {
        for (const NatExhaustion& x : nat.read_exhausted()) {
            std::cout << to_string(x.internal_block) << " " << proto_name(x.l4proto) << " "
                      << x.refused << "\n";
        }
    } else if (command == "hairpins") {
        for (const NatHairpin& h : nat.read_hairpins()) {
            std::cout << proto_name(h.l4proto) << " " << to_string(h.public_address) << ":"
                      << h.public_port << " " << to_string(h.internal_address) << ":"
                      << h.internal_port << "\n";
        }
    } else if (command == "delete") {
        std::cout << (nat.remove() ? "deleted" : "absent") << "\n";
    } else {
        throw std::invalid_argument("unknown command " + command);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::cerr << "nat44_driver: " << e.what() << "\n";
        return 1;
    }
}
