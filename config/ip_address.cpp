#include "config/ip_address.h"

#include <arpa/inet.h>

#include <charconv>

namespace xlat64 {
namespace {

template <typename Addr>
std::optional<Addr> parse_address(int family, std::string_view text) {
    // inet_pton needs a NUL-terminated string; addresses are short.
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    std::string copy(text);
    Addr addr{};
    if (inet_pton(family, copy.c_str(), addr.data()) != 1) {
        return std::nullopt;
    }
    return addr;
}

template <typename Prefix, typename ParseAddr>
std::optional<Prefix> parse_prefix(std::string_view text, unsigned max_len, ParseAddr parse_addr) {
    auto slash = text.find('/');
    auto addr = parse_addr(text.substr(0, slash));
    if (!addr) {
        return std::nullopt;
    }
    unsigned len = max_len;
    if (slash != std::string_view::npos) {
        auto digits = text.substr(slash + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
        if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() ||
            len > max_len) {
            return std::nullopt;
        }
    }
    if (mask_address(*addr, len) != *addr) {
        return std::nullopt;
    }
    return Prefix{*addr, static_cast<uint8_t>(len)};
}

template <typename Addr>
std::string format_address(int family, const Addr& addr) {
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(family, addr.data(), buf, sizeof(buf));
}

}  // namespace

std::optional<Ipv4Address> parse_ipv4_address(std::string_view text) {
    return parse_address<Ipv4Address>(AF_INET, text);
}

std::optional<Ipv6Address> parse_ipv6_address(std::string_view text) {
    return parse_address<Ipv6Address>(AF_INET6, text);
}

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text) {
    return parse_prefix<Ipv4Prefix>(text, 32, parse_ipv4_address);
}

std::optional<Ipv6Prefix> parse_ipv6_prefix(std::string_view text) {
    return parse_prefix<Ipv6Prefix>(text, 128, parse_ipv6_address);
}

std::string to_string(const Ipv4Address& addr) {
    return format_address(AF_INET, addr);
}
std::string to_string(const Ipv6Address& addr) {
    return format_address(AF_INET6, addr);
}

std::string to_string(const Ipv4Prefix& prefix) {
    return to_string(prefix.addr) + "/" + std::to_string(prefix.len);
}

std::string to_string(const Ipv6Prefix& prefix) {
    return to_string(prefix.addr) + "/" + std::to_string(prefix.len);
}

}  // namespace xlat64
