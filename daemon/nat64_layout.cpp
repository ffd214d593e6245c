#include "daemon/nat64_layout.h"

#include <algorithm>
#include <bit>
#include <string>

#include "daemon/port_blocks.h"

namespace xlat64 {
namespace {

// FNV-1a: stable across builds and machines (std::hash is not), and plenty for telling two
// configurations apart.
uint32_t fnv1a(const std::string& text) {
    uint32_t h = 2166136261u;
    for (unsigned char c : text) {
        h = (h ^ c) * 16777619u;
    }
    return h;
}

// Everything that gives a block number its meaning, except the public prefixes.
std::string layout_text(const Nat64Config& c) {
    std::string text = "v1";
    for (const Ipv6Prefix& p : c.prefixes) {
        text += " " + to_string(p);
    }
    text += " sub/" + std::to_string(c.subscriber_length);
    text += " hosts " + std::to_string(c.hosts_per_subscriber);
    text += " internal " + to_string(c.internal_pool);
    text += " ports " + std::to_string(c.ports.first) + "-" + std::to_string(c.ports.last);
    text += " block " + std::to_string(c.block_size);
    text += c.mode == Nat64Mode::dynamic ? " dynamic" : " deterministic";
    return text;
}

uint32_t public_hash(const std::vector<Ipv4Prefix>& prefixes, size_t count) {
    std::string text;
    for (size_t i = 0; i < count && i < prefixes.size(); ++i) {
        text += to_string(prefixes[i]) + " ";
    }
    return fnv1a(text);
}

uint32_t to_u32(const Ipv4Address& a) {
    return uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3];
}

Ipv4Address from_u32(uint32_t v) {
    return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
            static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

}  // namespace

Nat64Params nat64_params(const Nat64Config& config) {
    Nat64Params p;
    p.internal_pool = {mask_address(config.internal_pool.addr, config.internal_pool.len),
                       config.internal_pool.len};
    p.subscriber_len = config.subscriber_length;
    p.host_bits = static_cast<uint8_t>(std::countr_zero(config.hosts_per_subscriber));
    p.blocks = static_cast<uint32_t>(nat64_block_count(config));
    p.dynamic = config.mode == Nat64Mode::dynamic;
    p.layout_hash = fnv1a(layout_text(config));
    p.public_count = static_cast<uint32_t>(config.public_prefixes.size());
    p.public_hash = public_hash(config.public_prefixes, config.public_prefixes.size());
    return p;
}

std::vector<Nat64PrefixEntry> nat64_prefix_entries(const Nat64Config& config) {
    std::vector<Nat64PrefixEntry> out;
    uint64_t first = 0;
    for (const Ipv6Prefix& p : config.prefixes) {
        out.push_back({{mask_address(p.addr, p.len), p.len}, first});
        first += uint64_t{1} << (config.subscriber_length - p.len);
    }
    return out;
}

uint64_t nat64_mapped_blocks(const Nat64Config& config) {
    return config.mode == Nat64Mode::dynamic ? nat64_block_count(config)
                                             : nat64_subscriber_count(config);
}

NatBlockLayout::NatBlockLayout(const Nat64Config& config)
    : blocks_(config),
      internal_base_(to_u32(mask_address(config.internal_pool.addr, config.internal_pool.len))),
      hosts_(config.hosts_per_subscriber),
      internal_len_(static_cast<uint8_t>(32 - std::countr_zero(config.hosts_per_subscriber))) {}

NatBlock NatBlockLayout::operator()(uint64_t k) const {
    const PortBlock b = blocks_.block(k);
    const Ipv4Address internal = from_u32(internal_base_ + static_cast<uint32_t>(k * hosts_));
    return {{internal, internal_len_}, b.address, b.first_port, b.last_port};
}

std::vector<NatBlock> nat64_nat_blocks(const Nat64Config& config, uint64_t first, uint64_t last) {
    const NatBlockLayout layout(config);
    std::vector<NatBlock> out;
    out.reserve(last > first ? last - first : 0);
    for (uint64_t k = first; k < last; ++k) {
        out.push_back(layout(k));
    }
    return out;
}

std::vector<uint32_t> nat64_free_order(const Nat64Config& config, uint64_t first, uint64_t last) {
    const uint64_t per_address = nat64_blocks_per_address(config);
    const uint64_t addresses = nat64_public_address_count(config);
    std::vector<uint32_t> out;
    for (uint64_t on_address = 0; on_address < per_address; ++on_address) {
        for (uint64_t a = 0; a < addresses; ++a) {
            uint64_t k = a * per_address + on_address;
            if (k >= first && k < last) {
                out.push_back(static_cast<uint32_t>(k));
            }
        }
    }
    return out;
}

Nat64Transition nat64_transition(const std::optional<Nat64Params>& have, const Nat64Config& want) {
    const Nat64Params w = nat64_params(want);
    if (!have) {
        return Nat64Transition::reset;
    }
    if (*have == w) {
        return Nat64Transition::unchanged;
    }
    const bool same_layout = have->layout_hash == w.layout_hash &&
                             have->internal_pool == w.internal_pool &&
                             have->subscriber_len == w.subscriber_len &&
                             have->host_bits == w.host_bits && have->dynamic == w.dynamic;
    const bool appended =
        have->public_count <= want.public_prefixes.size() &&
        public_hash(want.public_prefixes, have->public_count) == have->public_hash &&
        have->blocks <= w.blocks;
    return same_layout && appended ? Nat64Transition::grow : Nat64Transition::reset;
}

NftNatShape nat64_nft_shape(const Nat64Config& config, std::string trusted_device,
                            std::vector<uint32_t> trusted_ifindexes) {
    NftNatShape shape;
    std::sort(trusted_ifindexes.begin(), trusted_ifindexes.end());
    trusted_ifindexes.erase(std::unique(trusted_ifindexes.begin(), trusted_ifindexes.end()),
                            trusted_ifindexes.end());
    shape.trusted_device = std::move(trusted_device);
    shape.trusted_ifindexes = std::move(trusted_ifindexes);
    shape.internal_pool = {mask_address(config.internal_pool.addr, config.internal_pool.len),
                           config.internal_pool.len};
    shape.block_len = static_cast<uint8_t>(32 - std::countr_zero(config.hosts_per_subscriber));
    shape.block_ports = config.block_size;
    shape.session_counters = config.session_counters;
    return shape;
}

}  // namespace xlat64
