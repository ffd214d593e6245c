#include "daemon/bpf_translator.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <system_error>

#include "kmod-shim/xlat64.skel.h"

namespace xlat64 {
namespace {

std::string errno_text(int err) {
    return std::strerror(err);
}

// The verifier log of a large program runs to thousands of lines; what the operator needs is the
// start (which program, which error) and the end (the instruction that was refused).
std::string shorten_log(std::string log) {
    constexpr size_t kHead = 4 * 1024;
    constexpr size_t kTail = 60 * 1024;
    if (log.size() <= kHead + kTail) {
        return log;
    }
    size_t omitted = log.size() - kHead - kTail;
    return log.substr(0, kHead) + "\n[... " + std::to_string(omitted) +
           " bytes of log omitted ...]\n" + log.substr(log.size() - kTail);
}

[[noreturn]] void throw_error(const std::string& what, int err, const std::string& log = {}) {
    std::string message = what + ": " + errno_text(err);
    if (!log.empty()) {
        message += "\n" + shorten_log(log);
        while (!message.empty() && message.back() == '\n') {
            message.pop_back();
        }
    }
    throw std::runtime_error(message);
}

// Collects what libbpf prints while it is alive (warnings, and on a failed load the verifier log,
// which libbpf prints at warning level), instead of letting it go to libbpf's default stderr
// printer, so the log can travel inside the exception. libbpf's printer is process-wide, hence
// the lock: two translators loading at once would otherwise interleave.
class LibbpfLogCapture {
  public:
    LibbpfLogCapture() : lock_(mutex()) {
        active() = this;
        previous_ = libbpf_set_print(&LibbpfLogCapture::print);
    }
    ~LibbpfLogCapture() {
        libbpf_set_print(previous_);
        active() = nullptr;
    }
    LibbpfLogCapture(const LibbpfLogCapture&) = delete;
    LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

    const std::string& text() const { return text_; }

  private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    static LibbpfLogCapture*& active() {
        static LibbpfLogCapture* capture = nullptr;
        return capture;
    }
    static int print(enum libbpf_print_level level, const char* format, va_list args) {
        if (level == LIBBPF_DEBUG || active() == nullptr) {
            return 0;
        }
        va_list copy;
        va_copy(copy, args);
        int n = std::vsnprintf(nullptr, 0, format, copy);
        va_end(copy);
        if (n <= 0) {
            return n;
        }
        std::string line(static_cast<size_t>(n) + 1, '\0');
        std::vsnprintf(line.data(), line.size(), format, args);
        line.resize(static_cast<size_t>(n));
        active()->text_ += line;
        return n;
    }

    std::lock_guard<std::mutex> lock_;
    libbpf_print_fn_t previous_ = nullptr;
    std::string text_;
};

// A per-CPU array of struct xlat_counter, summed over the CPUs.
template <size_t N>
std::array<StatCounter, N> read_counters(int fd, const char* map_name) {
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) {
        throw_error(std::string("reading ") + map_name + ": counting possible CPUs", -ncpus);
    }
    // A per-CPU lookup fills one value per possible CPU (16 bytes: no padding to 8 needed).
    std::vector<xlat_counter> per_cpu(static_cast<size_t>(ncpus));
    std::array<StatCounter, N> counters{};
    for (uint32_t key = 0; key < N; ++key) {
        int err = bpf_map_lookup_elem(fd, &key, per_cpu.data());
        if (err) {
            throw_error(std::string("reading ") + map_name, -err);
        }
        for (const xlat_counter& c : per_cpu) {
            counters[key].packets += c.packets;
            counters[key].bytes += c.bytes;
        }
    }
    return counters;
}

std::string eam_text(const EamEntry& entry) {
    return to_string(entry.ipv4) + " -> " + to_string(entry.ipv6);
}

bool valid_pool6_length(unsigned len) {
    return len == 32 || len == 40 || len == 48 || len == 56 || len == 64 || len == 96;
}

// The IPv4 suffix bits of an EAM entry as a mask in network order.
__be32 eam_host_mask(const EamEntry& entry) {
    unsigned suffix = 32U - entry.ipv4.len;
    uint32_t mask = suffix >= 32 ? 0xffffffffU : (1U << suffix) - 1;
    return htonl(mask);
}

void check_eam(const EamEntry& entry) {
    if (entry.ipv4.len > 32 || entry.ipv6.len > 128 ||
        32U - entry.ipv4.len != 128U - entry.ipv6.len) {
        throw std::runtime_error("EAM " + eam_text(entry) +
                                 ": the IPv4 and IPv6 prefixes must leave the same number of "
                                 "suffix bits (e.g. /24 and /120)");
    }
}

struct EamKeys {
    xlat_lpm4_key key4{};
    xlat_eam4_value value4{};
    xlat_lpm6_key key6{};
    xlat_eam6_value value6{};
};

EamKeys eam_keys(const EamEntry& entry) {
    EamKeys k;
    auto addr4 = mask_address(entry.ipv4.addr, entry.ipv4.len);
    auto addr6 = mask_address(entry.ipv6.addr, entry.ipv6.len);
    __be32 host_mask = eam_host_mask(entry);

    k.key4.prefixlen = entry.ipv4.len;
    std::memcpy(k.key4.addr, addr4.data(), sizeof(k.key4.addr));
    std::memcpy(k.value4.prefix6, addr6.data(), sizeof(k.value4.prefix6));
    k.value4.host_mask = host_mask;
    k.value4.prefix4_len = entry.ipv4.len;
    k.value4.prefix6_len = entry.ipv6.len;

    k.key6.prefixlen = entry.ipv6.len;
    std::memcpy(k.key6.addr, addr6.data(), sizeof(k.key6.addr));
    std::memcpy(&k.value6.prefix4, addr4.data(), sizeof(k.value6.prefix4));
    k.value6.host_mask = host_mask;
    k.value6.prefix4_len = entry.ipv4.len;
    k.value6.prefix6_len = entry.ipv6.len;
    return k;
}

// A lookup in an LPM trie returns the longest entry covering the key, which may be a shorter
// one; these tell whether the value found belongs to exactly this entry.
bool same_entry(const xlat_eam4_value& a, const xlat_eam4_value& b) {
    return a.prefix4_len == b.prefix4_len && a.prefix6_len == b.prefix6_len &&
           std::memcmp(a.prefix6, b.prefix6, sizeof(a.prefix6)) == 0;
}

bool same_entry(const xlat_eam6_value& a, const xlat_eam6_value& b) {
    return a.prefix4_len == b.prefix4_len && a.prefix6_len == b.prefix6_len &&
           a.prefix4 == b.prefix4;
}

// ENOTSUPP, the kernel's own "operation not supported" (524): what BPF_MAP_*_BATCH answers for a
// map type without batch operations, before touching any entry. Not in the uapi headers.
constexpr int kENOTSUPP = 524;

bool batch_unsupported(int err) {
    return err == -kENOTSUPP || err == -EOPNOTSUPP;
}

// Writes KEYS[i] -> VALUES[i] with one BPF_MAP_UPDATE_BATCH, or one update per entry where the
// kernel has no batch operations for the map type (decided at run time, not by kernel version).
// Returns how many were written; ERR the error that stopped the rest (0: none).
template <typename K, typename V>
size_t update_all(int fd, const std::vector<K>& keys, const std::vector<V>& values, int& err) {
    auto count = static_cast<__u32>(keys.size());
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    err = keys.empty() ? 0 : bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts);
    if (!batch_unsupported(err)) {
        return err == 0 ? keys.size() : count;  // COUNT: the entries written before the error
    }
    for (size_t i = 0; i < keys.size(); ++i) {
        err = bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY);
        if (err) {
            return i;
        }
    }
    return keys.size();
}

// Deletes the first N of KEYS, batched where the kernel can; a key already gone is no error.
// Returns 0 or the error that stopped it.
template <typename K>
int delete_all(int fd, const std::vector<K>& keys, size_t n) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    size_t done = 0;
    while (done < n) {
        auto count = static_cast<__u32>(n - done);
        int err = bpf_map_delete_batch(fd, &keys[done], &count, &opts);
        if (err == 0) {
            return 0;
        }
        if (batch_unsupported(err)) {
            break;
        }
        done += count;
        if (err != -ENOENT) {
            return err;
        }
        ++done;  // the batch stops at a missing key: skip it
    }
    for (; done < n; ++done) {
        int err = bpf_map_delete_elem(fd, &keys[done]);
        if (err && err != -ENOENT) {
            return err;
        }
    }
    return 0;
}

// The four arrays of a batch of EAM entries, both tries' keys and values.
struct EamBatch {
    std::vector<xlat_lpm4_key> keys4;
    std::vector<xlat_eam4_value> values4;
    std::vector<xlat_lpm6_key> keys6;
    std::vector<xlat_eam6_value> values6;

    void push_back(const EamEntry& entry) {
        check_eam(entry);
        EamKeys k = eam_keys(entry);
        keys4.push_back(k.key4);
        values4.push_back(k.value4);
        keys6.push_back(k.key6);
        values6.push_back(k.value6);
    }
};

}  // namespace

const std::array<StatInfo, XLAT_STAT_MAX>& stat_infos() {
#define XLAT64_STAT_INFO(id, label, kind, help) StatInfo{label, (kind) == 1, (kind) == 2, help},
    static const std::array<StatInfo, XLAT_STAT_MAX> infos{{XLAT64_STATS(XLAT64_STAT_INFO)}};
#undef XLAT64_STAT_INFO
    return infos;
}

const std::array<StatInfo, XLAT_INGRESS_STAT_MAX>& ingress_stat_infos() {
    static const std::array<StatInfo, XLAT_INGRESS_STAT_MAX> infos{{
        {"ingress_6to4", false, false,
         "translated to IPv4 at an interface's ingress (also in translated_6to4)"},
        {"ingress_4to6", false, false,
         "translated to IPv6 at an interface's ingress (also in translated_4to6)"},
        {"ingress_deferred", false, false,
         "for the translator, left to the xlat64 device path (fragments, ICMP errors, options, "
         "extension headers, hop limit 1, ...)"},
        {"ingress_internal_source", true, false,
         "IPv4 from the NAT64 internal pool arriving at an interface, dropped: only the "
         "translator sends from there (an outsider impersonating a subscriber)"},
    }};
    return infos;
}

void BpfTranslator::SkeletonDeleter::operator()(xlat64_bpf* skel) const {
    xlat64_bpf__destroy(skel);
}

BpfTranslator::BpfTranslator(const BpfLoadOptions& options)
    : pin_dir_(options.pin_dir), at_ingress_(options.at_ingress) {
    if (options.l2_header_len != 0 && options.l2_header_len != ETH_HLEN) {
        throw std::runtime_error("loading the xlat64 BPF program: link-layer header length " +
                                 std::to_string(options.l2_header_len) +
                                 " is neither 0 (tun device) nor 14 (Ethernet)");
    }
    std::string pin_root = pin_dir_.string();
    if (!pin_dir_.empty()) {
        // libbpf creates only the last path component; the directory may be nested.
        std::error_code ec;
        std::filesystem::create_directories(pin_dir_, ec);
        if (ec) {
            throw std::runtime_error("creating the BPF pin directory " + pin_root + ": " +
                                     ec.message());
        }
    }

    LibbpfLogCapture log;
    bpf_object_open_opts open_opts{};
    open_opts.sz = sizeof(open_opts);
    // With a pin root, libbpf reuses each map already pinned there under its name (contents and
    // all) and pins the maps it has to create.
    open_opts.pin_root_path = pin_dir_.empty() ? nullptr : pin_root.c_str();
    skel_.reset(xlat64_bpf__open_opts(&open_opts));
    if (!skel_) {
        throw_error("opening the xlat64 BPF object", errno, log.text());
    }
    if (pin_dir_.empty()) {
        bpf_map* map;
        bpf_object__for_each_map(map, skel_->obj) {
            int err = bpf_map__set_pin_path(map, nullptr);
            if (err) {
                throw_error(std::string("unpinning map ") + bpf_map__name(map), -err, log.text());
            }
        }
    }
    skel_->rodata->xlat_l2_hlen = options.l2_header_len;
    prepare_instance(options);

    int err = xlat64_bpf__load(skel_.get());
    if (err) {
        throw_error(at_ingress_
                        ? "loading the xlat64 BPF program for tc ingress (" +
                              std::to_string(options.l2_header_len) + "-byte link-layer header)"
                        : std::string("loading the xlat64 BPF program"),
                    -err, log.text());
    }
    if (!log.text().empty()) {
        std::cerr << log.text();
    }
}

void BpfTranslator::prepare_instance(const BpfLoadOptions& options) {
    // Only the program this instance attaches is loaded: the verifier never sees the other.
    bpf_program__set_autoload(
        at_ingress_ ? skel_->progs.xlat64_egress : skel_->progs.xlat64_ingress, false);
    if (!at_ingress_) {
        return;
    }
    // The daemon's bulk NAT64 operations run through the main translator only.
    bpf_program__set_autoload(skel_->progs.xlat64_n64_batch, false);
    bpf_map__set_autocreate(skel_->maps.xlat_n64_batch, false);
    skel_->rodata->xlat_at_ingress = 1;
    if (!pin_dir_.empty()) {
        return;  // libbpf reuses the maps the main translator pinned there
    }
    if (options.share_maps_with == nullptr) {
        throw std::runtime_error(
            "loading the xlat64 BPF program for tc ingress: without a pin directory it needs the "
            "main translator whose maps it shares");
    }
    // Every map but the instance's own constants and variables (.rodata, .bss, ...).
    bpf_map* map;
    bpf_object__for_each_map(map, skel_->obj) {
        if (bpf_map__is_internal(map)) {
            continue;
        }
        const char* name = bpf_map__name(map);
        bpf_map* shared = bpf_object__find_map_by_name(options.share_maps_with->skel_->obj, name);
        int err = shared ? bpf_map__reuse_fd(map, bpf_map__fd(shared)) : -ENOENT;
        if (err) {
            throw_error(std::string("sharing map ") + name + " with the tc ingress instance", -err);
        }
    }
}

BpfTranslator::~BpfTranslator() = default;

int BpfTranslator::program_fd() const {
    return bpf_program__fd(at_ingress_ ? skel_->progs.xlat64_ingress : skel_->progs.xlat64_egress);
}

uint32_t BpfTranslator::program_id() const {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    int err = bpf_obj_get_info_by_fd(program_fd(), &info, &len);
    if (err) {
        throw_error("reading the xlat64 BPF program's info", -err);
    }
    return info.id;
}

std::string BpfTranslator::program_tag() const {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    int err = bpf_obj_get_info_by_fd(program_fd(), &info, &len);
    if (err) {
        throw_error("reading the xlat64 BPF program's info", -err);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string tag;
    for (uint8_t byte : info.tag) {
        tag += kHex[byte >> 4];
        tag += kHex[byte & 0xf];
    }
    return tag;
}

namespace {

template <size_t N>
void copy_address(uint8_t (&out)[N], const std::array<uint8_t, N>& in) {
    std::memcpy(out, in.data(), N);
}

xlat_params encode_settings(const TranslatorSettings& s) {
    xlat_params p{};
    const TranslationConfig& t = s.translation;
    if (s.pool6) {
        copy_address(p.pool6, mask_address(s.pool6->addr, s.pool6->len));
        p.pool6_len = s.pool6->len;
        p.flags |= XLAT_PARAM_POOL6;
    }
    p.lowest_ipv6_mtu = static_cast<uint16_t>(std::min<uint32_t>(t.lowest_ipv6_mtu, 0xffff));
    if (t.drop_udp_zero_checksum) {
        p.flags |= XLAT_PARAM_UDP_ZERO_CSUM_DROP;
    }
    if (t.traffic_class) {
        p.flags |= XLAT_PARAM_TOS_SET;
        p.tos_value = *t.traffic_class;
    }
    if (t.allow_wkp_non_global) {
        p.flags |= XLAT_PARAM_ALLOW_WKP_NON_GLOBAL;
    }
    if (t.ipv4_address) {
        p.flags |= XLAT_PARAM_OWN_ADDR4;
        std::memcpy(&p.own_addr4, t.ipv4_address->data(), 4);
    }
    if (t.ipv6_address) {
        p.flags |= XLAT_PARAM_OWN_ADDR6;
        copy_address(p.own_addr6, *t.ipv6_address);
    }
    if (t.rfc6791_pool4) {
        p.flags |= XLAT_PARAM_RFC6791_V4;
        auto addr = mask_address(t.rfc6791_pool4->addr, t.rfc6791_pool4->len);
        std::memcpy(&p.rfc6791_v4, addr.data(), 4);
        p.rfc6791_v4_len = t.rfc6791_pool4->len;
    }
    if (t.rfc6791_pool6) {
        p.flags |= XLAT_PARAM_RFC6791_V6;
        copy_address(p.rfc6791_v6, mask_address(t.rfc6791_pool6->addr, t.rfc6791_pool6->len));
        p.rfc6791_v6_len = t.rfc6791_pool6->len;
    }
    if (s.nat64) {
        const Nat64Params& n = *s.nat64;
        p.flags |= XLAT_PARAM_NAT64 | (n.dynamic ? XLAT_PARAM_NAT64_DYNAMIC : 0);
        auto addr = mask_address(n.internal_pool.addr, n.internal_pool.len);
        std::memcpy(&p.n64_internal, addr.data(), 4);
        p.n64_internal_len = n.internal_pool.len;
        p.n64_subscriber_len = n.subscriber_len;
        p.n64_host_bits = n.host_bits;
        p.n64_blocks = n.blocks;
        p.n64_layout_hash = n.layout_hash;
        p.n64_public_hash = n.public_hash;
        p.n64_public_count = n.public_count;
    }
    p.valid = 1;
    return p;
}

TranslatorSettings decode_settings(const xlat_params& p) {
    TranslatorSettings s;
    TranslationConfig& t = s.translation;
    if (p.flags & XLAT_PARAM_POOL6) {
        Ipv6Prefix prefix;
        std::memcpy(prefix.addr.data(), p.pool6, prefix.addr.size());
        prefix.len = p.pool6_len;
        s.pool6 = prefix;
    }
    t.lowest_ipv6_mtu = p.lowest_ipv6_mtu;
    t.drop_udp_zero_checksum = (p.flags & XLAT_PARAM_UDP_ZERO_CSUM_DROP) != 0;
    if (p.flags & XLAT_PARAM_TOS_SET) {
        t.traffic_class = p.tos_value;
    }
    t.allow_wkp_non_global = (p.flags & XLAT_PARAM_ALLOW_WKP_NON_GLOBAL) != 0;
    if (p.flags & XLAT_PARAM_OWN_ADDR4) {
        Ipv4Address a;
        std::memcpy(a.data(), &p.own_addr4, 4);
        t.ipv4_address = a;
    }
    if (p.flags & XLAT_PARAM_OWN_ADDR6) {
        Ipv6Address a;
        std::memcpy(a.data(), p.own_addr6, a.size());
        t.ipv6_address = a;
    }
    if (p.flags & XLAT_PARAM_RFC6791_V4) {
        Ipv4Prefix prefix;
        std::memcpy(prefix.addr.data(), &p.rfc6791_v4, 4);
        prefix.len = p.rfc6791_v4_len;
        t.rfc6791_pool4 = prefix;
    }
    if (p.flags & XLAT_PARAM_RFC6791_V6) {
        Ipv6Prefix prefix;
        std::memcpy(prefix.addr.data(), p.rfc6791_v6, prefix.addr.size());
        prefix.len = p.rfc6791_v6_len;
        t.rfc6791_pool6 = prefix;
    }
    if (p.flags & XLAT_PARAM_NAT64) {
        Nat64Params n;
        std::memcpy(n.internal_pool.addr.data(), &p.n64_internal, 4);
        n.internal_pool.len = p.n64_internal_len;
        n.subscriber_len = p.n64_subscriber_len;
        n.host_bits = p.n64_host_bits;
        n.blocks = p.n64_blocks;
        n.dynamic = (p.flags & XLAT_PARAM_NAT64_DYNAMIC) != 0;
        n.layout_hash = p.n64_layout_hash;
        n.public_hash = p.n64_public_hash;
        n.public_count = p.n64_public_count;
        s.nat64 = n;
    }
    return s;
}

}  // namespace

xlat_settings BpfTranslator::read_settings_header(const std::string& context) const {
    uint32_t key = 0;
    xlat_settings header{};
    int err = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xlat_settings), &key, &header);
    if (err) {
        throw_error(context + "reading " XLAT64_MAP_SETTINGS, -err);
    }
    return header;
}

std::optional<TranslatorSettings> BpfTranslator::settings() const {
    const xlat_settings header = read_settings_header("");
    if (header.abi_version == 0) {
        return std::nullopt;
    }
    uint32_t key = header.active_params & 1;
    xlat_params params{};
    int err = bpf_map_lookup_elem(bpf_map__fd(skel_->maps.xlat_params), &key, &params);
    if (err) {
        throw_error("reading " XLAT64_MAP_PARAMS, -err);
    }
    if (!params.valid) {
        // Written by a daemon of the first ABI, which knew only pool6: the reconciler sees
        // what it left and rewrites it in the new form.
        TranslatorSettings legacy;
        // lowest_ipv6_mtu 0 is never valid: the reconciler sees the options differ from any
        // configuration and writes the slots, which the new program needs.
        legacy.translation.lowest_ipv6_mtu = 0;
        if (header.flags & XLAT_SETTING_POOL6) {
            Ipv6Prefix prefix;
            std::memcpy(prefix.addr.data(), header.pool6, prefix.addr.size());
            prefix.len = header.pool6_len;
            legacy.pool6 = prefix;
        }
        return legacy;
    }
    return decode_settings(params);
}

void BpfTranslator::set_settings(const TranslatorSettings& settings) {
    std::string what = "writing the translator settings";
    if (settings.pool6 && !valid_pool6_length(settings.pool6->len)) {
        throw std::runtime_error(what + ": pool6 " + to_string(*settings.pool6) +
                                 ": RFC 6052 allows only /32, /40, /48, /56, /64 and /96");
    }
    xlat_settings header = read_settings_header(what + ": ");
    // A header that was never written has slot 0 "live" but invalid: write slot 1 then.
    uint32_t slot = (header.active_params & 1) ^ 1;
    xlat_params params = encode_settings(settings);
    int err = bpf_map_update_elem(bpf_map__fd(skel_->maps.xlat_params), &slot, &params, BPF_ANY);
    if (err) {
        throw_error(what + " (slot " + std::to_string(slot) + " of " XLAT64_MAP_PARAMS ")", -err);
    }
    // The flip. The legacy fields mirror the live slot for a program of the first ABI.
    header.active_params = slot;
    std::memcpy(header.pool6, params.pool6, sizeof(header.pool6));
    header.pool6_len = params.pool6_len;
    header.flags = (params.flags & XLAT_PARAM_POOL6) ? XLAT_SETTING_POOL6 : 0;
    // The program treats abi_version 0 as "never configured" and drops everything.
    header.abi_version = XLAT64_ABI_VERSION;
    const uint32_t key = 0;
    err = bpf_map_update_elem(bpf_map__fd(skel_->maps.xlat_settings), &key, &header, BPF_ANY);
    if (err) {
        throw_error(what + " (" XLAT64_MAP_SETTINGS ")", -err);
    }
}

std::optional<Ipv6Prefix> BpfTranslator::pool6() const {
    auto s = settings();
    return s ? s->pool6 : std::nullopt;
}

void BpfTranslator::set_pool6(const std::optional<Ipv6Prefix>& pool6) {
    TranslatorSettings s = settings().value_or(TranslatorSettings{});
    s.pool6 = pool6;
    set_settings(s);
}

void BpfTranslator::set_translation(const TranslationConfig& translation) {
    TranslatorSettings s = settings().value_or(TranslatorSettings{});
    s.translation = translation;
    set_settings(s);
}

std::vector<EamEntry> BpfTranslator::eamt() const {
    settle_eamt();
    return *eamt_;
}

size_t BpfTranslator::eamt_size() const {
    settle_eamt();
    return eamt_->size();
}

void BpfTranslator::settle_eamt() const {
    if (!eamt_) {
        eamt_ = read_eamt_from_kernel();
        eamt_writes_.clear();
        return;
    }
    if (eamt_writes_.empty()) {
        return;
    }
    // The writes keep their order within one IPv4 prefix: the trie is keyed by it.
    std::stable_sort(eamt_writes_.begin(), eamt_writes_.end(),
                     [](const auto& a, const auto& b) { return a.first.ipv4 < b.first.ipv4; });
    std::vector<EamEntry> merged;
    merged.reserve(eamt_->size() + eamt_writes_.size());
    auto held = eamt_->begin();
    for (size_t i = 0; i < eamt_writes_.size();) {
        const Ipv4Prefix key = eamt_writes_[i].first.ipv4;
        while (held != eamt_->end() && held->ipv4 < key) {
            merged.push_back(*held++);
        }
        std::optional<EamEntry> now;
        if (held != eamt_->end() && held->ipv4 == key) {
            now = *held++;
        }
        for (; i < eamt_writes_.size() && eamt_writes_[i].first.ipv4 == key; ++i) {
            const auto& [entry, added] = eamt_writes_[i];
            if (added) {
                now = entry;
            } else if (now == entry) {  // remove_eam leaves another entry of the prefix alone
                now.reset();
            }
        }
        if (now) {
            merged.push_back(*now);
        }
    }
    merged.insert(merged.end(), held, eamt_->end());
    *eamt_ = std::move(merged);
    eamt_writes_.clear();
}

std::vector<EamEntry> BpfTranslator::read_eamt_from_kernel() const {
    int fd = bpf_map__fd(skel_->maps.xlat_eamt4);
    std::vector<EamEntry> entries;
    xlat_lpm4_key key{};
    xlat_lpm4_key next{};
    bool first = true;
    // Bounded so that a trie changing under the walk cannot keep it going forever.
    for (uint64_t i = 0; i <= XLAT64_EAMT_MAX_ENTRIES; ++i) {
        int err = bpf_map_get_next_key(fd, first ? nullptr : &key, &next);
        if (err == -ENOENT) {
            break;
        }
        if (err) {
            throw_error("reading " XLAT64_MAP_EAMT4, -err);
        }
        first = false;
        key = next;
        xlat_eam4_value value{};
        err = bpf_map_lookup_elem(fd, &key, &value);
        if (err == -ENOENT) {
            continue;  // removed meanwhile
        }
        if (err) {
            throw_error("reading " XLAT64_MAP_EAMT4, -err);
        }
        EamEntry entry;
        std::memcpy(entry.ipv4.addr.data(), key.addr, entry.ipv4.addr.size());
        entry.ipv4.len = static_cast<uint8_t>(key.prefixlen);
        std::memcpy(entry.ipv6.addr.data(), value.prefix6, entry.ipv6.addr.size());
        entry.ipv6.len = value.prefix6_len;
        entries.push_back(entry);
    }
    std::sort(entries.begin(), entries.end());
    return entries;
}

void BpfTranslator::write_eam(const EamEntry& entry) {
    check_eam(entry);
    EamKeys k = eam_keys(entry);
    int fd4 = bpf_map__fd(skel_->maps.xlat_eamt4);
    int fd6 = bpf_map__fd(skel_->maps.xlat_eamt6);

    // Remember what the IPv4 trie held for this exact prefix, to put it back if the IPv6 half
    // fails: an entry must never be left in one direction only.
    xlat_eam4_value old4{};
    int err = bpf_map_lookup_elem(fd4, &k.key4, &old4);
    bool had_old4 = err == 0 && old4.prefix4_len == entry.ipv4.len;

    err = bpf_map_update_elem(fd4, &k.key4, &k.value4, BPF_ANY);
    if (err) {
        throw_error("adding EAM " + eam_text(entry) + " to " XLAT64_MAP_EAMT4, -err);
    }
    err = bpf_map_update_elem(fd6, &k.key6, &k.value6, BPF_ANY);
    if (err) {
        if (had_old4) {
            bpf_map_update_elem(fd4, &k.key4, &old4, BPF_ANY);
        } else {
            bpf_map_delete_elem(fd4, &k.key4);
        }
        throw_error("adding EAM " + eam_text(entry) + " to " XLAT64_MAP_EAMT6, -err);
    }
}

void BpfTranslator::erase_eam(const EamEntry& entry) {
    check_eam(entry);
    EamKeys k = eam_keys(entry);
    int fd4 = bpf_map__fd(skel_->maps.xlat_eamt4);
    int fd6 = bpf_map__fd(skel_->maps.xlat_eamt6);

    // Each half is removed only when it still belongs to this entry: a later add_eam of the same
    // IPv4 (or IPv6) prefix with a different other side must survive removing the old entry.
    xlat_eam4_value value4{};
    int err = bpf_map_lookup_elem(fd4, &k.key4, &value4);
    if (err == 0 && same_entry(value4, k.value4)) {
        err = bpf_map_delete_elem(fd4, &k.key4);
        if (err && err != -ENOENT) {
            throw_error("removing EAM " + eam_text(entry) + " from " XLAT64_MAP_EAMT4, -err);
        }
    } else if (err && err != -ENOENT) {
        throw_error("removing EAM " + eam_text(entry) + " from " XLAT64_MAP_EAMT4, -err);
    }

    xlat_eam6_value value6{};
    err = bpf_map_lookup_elem(fd6, &k.key6, &value6);
    if (err == 0 && same_entry(value6, k.value6)) {
        err = bpf_map_delete_elem(fd6, &k.key6);
        if (err && err != -ENOENT) {
            throw_error("removing EAM " + eam_text(entry) + " from " XLAT64_MAP_EAMT6, -err);
        }
    } else if (err && err != -ENOENT) {
        throw_error("removing EAM " + eam_text(entry) + " from " XLAT64_MAP_EAMT6, -err);
    }
}

void BpfTranslator::add_eam(const EamEntry& entry) {
    try {
        write_eam(entry);
    } catch (...) {
        eamt_.reset();  // a failed write (or its undo) may have left anything: read it again
        throw;
    }
    eamt_writes_.emplace_back(entry, true);
}

void BpfTranslator::remove_eam(const EamEntry& entry) {
    try {
        erase_eam(entry);
    } catch (...) {
        eamt_.reset();
        throw;
    }
    eamt_writes_.emplace_back(entry, false);
}

void BpfTranslator::add_eams(const std::vector<EamEntry>& entries) {
    EamBatch batch;
    for (const EamEntry& entry : entries) {
        batch.push_back(entry);
    }
    const int fd4 = bpf_map__fd(skel_->maps.xlat_eamt4);
    const int fd6 = bpf_map__fd(skel_->maps.xlat_eamt6);
    int err = 0;
    const size_t written4 = update_all(fd4, batch.keys4, batch.values4, err);
    size_t written6 = 0;
    if (err == 0) {
        written6 = update_all(fd6, batch.keys6, batch.values6, err);
    }
    if (err) {
        // No entry may stay in one direction only. The reconciler never overwrites with a batch
        // (it removes an entry before adding its replacement), so undoing is deleting.
        eamt_.reset();
        delete_all(fd6, batch.keys6, written6);
        delete_all(fd4, batch.keys4, written4);
        const bool in4 = written4 < entries.size();
        throw_error("adding EAM " + eam_text(entries[in4 ? written4 : written6]) + " to " +
                        (in4 ? XLAT64_MAP_EAMT4 : XLAT64_MAP_EAMT6) + " (one of " +
                        std::to_string(entries.size()) + " added at once, none kept)",
                    -err);
    }
    for (const EamEntry& entry : entries) {
        eamt_writes_.emplace_back(entry, true);
    }
}

void BpfTranslator::remove_eams(const std::vector<EamEntry>& entries) {
    // Only entries the tries hold exactly as given, as remove_eam: the record says which, without
    // a lookup per entry.
    settle_eamt();
    EamBatch batch;
    for (const EamEntry& entry : entries) {
        if (std::binary_search(eamt_->begin(), eamt_->end(), entry)) {
            batch.push_back(entry);
        }
    }
    const int fd4 = bpf_map__fd(skel_->maps.xlat_eamt4);
    const int fd6 = bpf_map__fd(skel_->maps.xlat_eamt6);
    int err = delete_all(fd4, batch.keys4, batch.keys4.size());
    if (err == 0) {
        err = delete_all(fd6, batch.keys6, batch.keys6.size());
    }
    if (err) {
        eamt_.reset();
        throw_error("removing " + std::to_string(entries.size()) + " EAM entries", -err);
    }
    for (const EamEntry& entry : entries) {
        eamt_writes_.emplace_back(entry, false);
    }
}

StatsSnapshot BpfTranslator::read_stats() const {
    return read_counters<XLAT_STAT_MAX>(bpf_map__fd(skel_->maps.xlat_stats), XLAT64_MAP_STATS);
}

IngressStatsSnapshot BpfTranslator::read_ingress_stats() const {
    return read_counters<XLAT_INGRESS_STAT_MAX>(bpf_map__fd(skel_->maps.xlat_ingress_stats),
                                                XLAT64_MAP_INGRESS_STATS);
}

Nat64MapFds BpfTranslator::nat64_map_fds() const {
    const auto& m = skel_->maps;
    return {bpf_map__fd(m.xlat_n64_pfx),
            bpf_map__fd(m.xlat_n64_subs),
            bpf_map__fd(m.xlat_n64_owner),
            bpf_map__fd(m.xlat_n64_free),
            bpf_map__fd(m.xlat_n64_host6),
            bpf_map__fd(m.xlat_n64_host4),
            bpf_map__fd(m.xlat_events),
            bpf_map__fd(m.xlat_n64_batch),
            bpf_program__fd(skel_->progs.xlat64_n64_batch)};
}

void BpfTranslator::remove_pins(const std::filesystem::path& pin_dir) {
    static constexpr const char* kMaps[] = {
        XLAT64_MAP_SETTINGS,     XLAT64_MAP_PARAMS,     XLAT64_MAP_EAMT4,
        XLAT64_MAP_EAMT6,        XLAT64_MAP_STATS,      XLAT64_MAP_N64_PREFIXES,
        XLAT64_MAP_N64_SUBS,     XLAT64_MAP_N64_OWNERS, XLAT64_MAP_N64_FREE,
        XLAT64_MAP_N64_HOSTS6,   XLAT64_MAP_N64_HOSTS4, XLAT64_MAP_EVENTS,
        XLAT64_MAP_INGRESS_STATS};
    for (const char* name : kMaps) {
        std::filesystem::path pin = pin_dir / name;
        if (unlink(pin.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
            throw_error("removing BPF pin " + pin.string(), errno);
        }
    }
    // Anything else in the directory is not ours: leave it, and the directory with it.
    if (rmdir(pin_dir.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST &&
        errno != ENOTDIR) {
        throw_error("removing BPF pin directory " + pin_dir.string(), errno);
    }
}

}  // namespace xlat64
