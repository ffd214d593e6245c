// Independent checks of translated frames (RFC 1071 checksums and IP lengths), shared by the
// datapath tests and the datapath fuzzer. Written here, independently of the BPF program and of
// scapy. Frames start with a 14-byte Ethernet header, as BPF_PROG_TEST_RUN hands them over.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace xlat64_test {

using Bytes = std::vector<uint8_t>;

constexpr size_t kEthHeaderLen = 14;
constexpr uint16_t kEthTypeIpv4 = 0x0800;
constexpr uint16_t kEthTypeIpv6 = 0x86dd;

// --- RFC 1071 checksums, written here independently of the program and of scapy ------------------

inline uint32_t sum16(const uint8_t* data, size_t len, uint32_t sum = 0) {
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
    }
    if (len % 2) {
        sum += static_cast<uint32_t>(data[len - 1] << 8);
    }
    return sum;
}

inline uint16_t fold(uint32_t sum) {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(sum);
}

inline uint16_t get16(const Bytes& b, size_t off) {
    return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

// A checksummed region is valid when it sums (with the checksum field) to 0xffff.
inline bool sums_to_ones(uint32_t sum) {
    return fold(sum) == 0xffff;
}

// Every checksum of a translated frame. Returns the problems found, empty when all is valid. A
// fragment's transport checksum covers the whole datagram, so only its IP header is checked;
// `*fragment` (when given) tells the caller so.
inline std::string verify_checksums(const Bytes& frame, bool* fragment = nullptr) {
    bool is_fragment = false;
    if (fragment) {
        *fragment = false;
    }
    std::ostringstream problems;
    if (frame.size() < kEthHeaderLen + 20) {
        return "frame too short for an IP header";
    }
    uint16_t ethertype = get16(frame, 12);
    const uint8_t* ip = frame.data() + kEthHeaderLen;
    size_t ip_len = frame.size() - kEthHeaderLen;
    uint8_t proto = 0;
    const uint8_t* l4 = nullptr;
    size_t l4_len = 0;
    uint32_t pseudo = 0;  // pseudo-header sum, for the protocols that have one

    if (ethertype == kEthTypeIpv4) {
        size_t ihl = (ip[0] & 0xf) * 4U;
        size_t tot = static_cast<size_t>(ip[2] << 8 | ip[3]);
        if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || tot != ip_len) {
            return "bad IPv4 version, header length or total length";
        }
        if (!sums_to_ones(sum16(ip, ihl))) {
            problems << "IPv4 header checksum invalid; ";
        }
        proto = ip[9];
        l4 = ip + ihl;
        l4_len = tot - ihl;
        is_fragment = (get16(frame, kEthHeaderLen + 6) & 0x3fff) != 0;
        pseudo = sum16(ip + 12, 8) + proto + static_cast<uint32_t>(l4_len);
    } else if (ethertype == kEthTypeIpv6) {
        if (ip_len < 40 || (ip[0] >> 4) != 6) {
            return "bad IPv6 version or length";
        }
        size_t plen = static_cast<size_t>(ip[4] << 8 | ip[5]);
        if (plen + 40 != ip_len) {
            return "IPv6 payload length does not match the frame";
        }
        proto = ip[6];
        l4 = ip + 40;
        l4_len = plen;
        // Hop-by-hop, routing and destination options headers (a hairpinned packet keeps
        // them), then a Fragment header: the upper layer follows them.
        for (int n = 0; n < 8 && (proto == 0 || proto == 43 || proto == 60) && l4_len >= 8; ++n) {
            size_t hlen = (l4[1] + 1U) * 8U;
            if (hlen > l4_len) {
                return "IPv6 extension header longer than the payload";
            }
            proto = l4[0];
            l4 += hlen;
            l4_len -= hlen;
        }
        if (proto == 44 && l4_len >= 8) {
            is_fragment = ((l4[2] << 8 | l4[3]) & 0xfff9) != 0;
            proto = l4[0];
            l4 += 8;
            l4_len -= 8;
        }
        // 32-bit length and next header (RFC 8200 section 8.1): sum the same as 16-bit words.
        pseudo = sum16(ip + 8, 32) + static_cast<uint32_t>(l4_len >> 16) +
                 static_cast<uint32_t>(l4_len & 0xffff) + proto;
    } else {
        return "output is neither IPv4 nor IPv6";
    }
    if (is_fragment) {
        if (fragment) {
            *fragment = true;
        }
        return problems.str();
    }

    switch (proto) {
        case 6:   // TCP
        case 58:  // ICMPv6
            if (!sums_to_ones(sum16(l4, l4_len, pseudo))) {
                problems << "protocol " << int(proto) << " checksum invalid; ";
            }
            break;
        case 17:  // UDP: 0 means "none", allowed only over IPv4
            if (l4_len >= 8 && l4[6] == 0 && l4[7] == 0) {
                if (ethertype == kEthTypeIpv6) {
                    problems << "IPv6 UDP checksum is zero; ";
                }
            } else if (!sums_to_ones(sum16(l4, l4_len, pseudo))) {
                problems << "UDP checksum invalid; ";
            }
            break;
        case 1:  // ICMP: no pseudo-header
            if (ethertype != kEthTypeIpv4) {
                problems << "ICMPv4 inside IPv6; ";
            } else if (!sums_to_ones(sum16(l4, l4_len))) {
                problems << "ICMP checksum invalid; ";
            }
            break;
        default:
            problems << "unexpected protocol " << int(proto) << "; ";
    }
    return problems.str();
}

}  // namespace xlat64_test
