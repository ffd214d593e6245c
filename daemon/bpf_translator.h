// BpfTranslator owns the loaded xlat64 tc program and every one of its maps (kmod-shim/). It is the
// only code that touches them: the reconciler decides what the maps should hold, this class puts it
// there. Everything in the maps survives this object when they are pinned (hitless restarts).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "kmod-shim/xlat64_abi.h"

struct xlat64_bpf;  // generated libbpf skeleton (kmod-shim/xlat64.skel.h)

namespace xlat64 {

class BpfTranslator;

struct BpfLoadOptions {
    // Directory under bpffs where the maps are pinned (by name). When the maps are already pinned
    // there, they are reused with their contents: that is how a restarted daemon adopts the
    // running translator. Empty: nothing is pinned (datapath tests).
    std::filesystem::path pin_dir;
    // Bytes before the IP header in the packets the program sees: 0 on the xlat64 tun device (no
    // link-layer header), 14 for BPF_PROG_TEST_RUN, which always hands tc programs an Ethernet
    // frame. A load-time constant, so the verifier prunes the unused branch.
    uint32_t l2_header_len = 0;
    // An instance for the tc ingress of an operator's interface (translation.ingress_interfaces):
    // the xlat64_ingress program instead of xlat64_egress, with l2_header_len that interface's
    // (14 Ethernet, 0 without a link-layer header). It only provides a program: it works on the
    // maps of the main translator and never writes them.
    bool at_ingress = false;
    // The main translator whose maps this instance uses. Required for an ingress instance without
    // a pin dir; with one, the maps pinned there are those (the main translator pinned them).
    const BpfTranslator* share_maps_with = nullptr;
};

struct StatCounter {
    uint64_t packets = 0;
    uint64_t bytes = 0;
};

// Counters summed over all CPUs, indexed by enum xlat_stat.
using StatsSnapshot = std::array<StatCounter, XLAT_STAT_MAX>;
// What the ingress fast path did, indexed by enum xlat_ingress_stat.
using IngressStatsSnapshot = std::array<StatCounter, XLAT_INGRESS_STAT_MAX>;

struct StatInfo {
    const char* name;  // stable label, e.g. "no_source_mapping"
    bool is_drop;
    bool is_event;  // not a packet: a host or block handed out
    const char* help;
};
// Name and meaning of each counter, from XLAT64_STATS in the ABI header.
const std::array<StatInfo, XLAT_STAT_MAX>& stat_infos();
// Name and meaning of each ingress counter (xlat64ctl stats).
const std::array<StatInfo, XLAT_INGRESS_STAT_MAX>& ingress_stat_infos();

// What the program reads for every packet besides the EAMT (struct xlat_params in the ABI header).
// set_settings() writes it into the slot the program is not reading and then makes that slot live
// with one store, so a reload reaches each packet whole, never half old and half new.
// The NAT64 part of the settings (daemon/nat64_layout.h computes it from the configuration).
struct Nat64Params {
    Ipv4Prefix internal_pool;
    uint8_t subscriber_len = 0;
    uint8_t host_bits = 0;  // log2(hosts_per_subscriber)
    uint32_t blocks = 0;
    bool dynamic = false;
    uint32_t layout_hash = 0;
    uint32_t public_hash = 0;
    uint32_t public_count = 0;
    bool operator==(const Nat64Params&) const = default;
};

struct TranslatorSettings {
    std::optional<Ipv6Prefix> pool6;
    TranslationConfig translation;
    std::optional<Nat64Params> nat64;
    bool operator==(const TranslatorSettings&) const = default;
};

// The stateful NAT64 maps, for Nat64Maps (daemon/nat64_maps.h), which owns what goes into them.
struct Nat64MapFds {
    int prefixes = -1;
    int subscribers = -1;
    int owners = -1;
    int free_blocks = -1;
    int hosts6 = -1;
    int hosts4 = -1;
    int events = -1;
    // xlat64_n64_batch and its scratch map (struct xlat_n64_batch); -1 without them, and the
    // daemon then makes one bpf() call per map operation.
    int batch = -1;
    int batch_program = -1;
};

class BpfTranslator {
  public:
    // Opens the embedded object, reuses pinned maps, loads the program (verifier) and pins maps
    // that were not pinned yet. Throws std::runtime_error with context (and the libbpf error).
    explicit BpfTranslator(const BpfLoadOptions& options);
    ~BpfTranslator();
    BpfTranslator(const BpfTranslator&) = delete;
    BpfTranslator& operator=(const BpfTranslator&) = delete;

    // The program this instance loaded: xlat64_egress, or xlat64_ingress for an ingress
    // instance (BpfLoadOptions::at_ingress).
    int program_fd() const;
    uint32_t program_id() const;
    // The program's tag (hash of its instructions), hex: equal tags mean an attached program
    // need not be replaced.
    std::string program_tag() const;
    const std::filesystem::path& pin_dir() const { return pin_dir_; }

    // The live settings (nullopt: no daemon ever wrote them, the program drops everything).
    std::optional<TranslatorSettings> settings() const;
    // Validates, writes the inactive slot, flips. Throws with context.
    void set_settings(const TranslatorSettings& settings);

    // pool6 as the kernel holds it now (nullopt: none configured, or maps empty).
    std::optional<Ipv6Prefix> pool6() const;
    // set_settings() with only pool6 changed (the rest as it is, or the defaults).
    void set_pool6(const std::optional<Ipv6Prefix>& pool6);
    // set_settings() with only the translation options changed.
    void set_translation(const TranslationConfig& translation);

    // The EAMT as the kernel holds it, sorted. Read from the kernel the first time (adopting
    // what a previous daemon left); after that from this object's own record of what it wrote,
    // because reading a trie back costs two system calls per entry, seconds for a million, on
    // every reload. The pinned maps have no other writer: another xlat64d cannot run on the
    // same pins, and a hand edit with bpftool is seen (and repaired) at the next start.
    std::vector<EamEntry> eamt() const;
    size_t eamt_size() const;
    // Adds or overwrites the entry in both directions' tries.
    void add_eam(const EamEntry& entry);
    void remove_eam(const EamEntry& entry);
    // The same for many entries with a few system calls (batched map updates): a reload of a
    // large table. On failure nothing of the batch stays (throws).
    void add_eams(const std::vector<EamEntry>& entries);
    void remove_eams(const std::vector<EamEntry>& entries);

    StatsSnapshot read_stats() const;
    IngressStatsSnapshot read_ingress_stats() const;
    Nat64MapFds nat64_map_fds() const;

    // Removes the pins this program's maps have under `pin_dir` (only the xlat64 map names), then
    // the directory if it is empty. Does nothing for a directory that does not exist.
    static void remove_pins(const std::filesystem::path& pin_dir);

  private:
    // The xlat_settings header (which params slot is live); `context` prefixes an error.
    xlat_settings read_settings_header(const std::string& context) const;

    struct SkeletonDeleter {
        void operator()(xlat64_bpf* skel) const;
    };
    std::vector<EamEntry> read_eamt_from_kernel() const;
    void write_eam(const EamEntry& entry);
    void erase_eam(const EamEntry& entry);
    // Folds the writes since the last read into eamt_ (sorted by IPv4 prefix, one entry each).
    void settle_eamt() const;

    // Chooses the program to load and the instance's constants; for an ingress instance without
    // pins, points its maps at the main translator's.
    void prepare_instance(const BpfLoadOptions& options);

    std::unique_ptr<xlat64_bpf, SkeletonDeleter> skel_;
    std::filesystem::path pin_dir_;
    bool at_ingress_ = false;
    // The kernel's EAMT as last read, and the writes since (the entry, and whether it was an
    // add): folding them in only when the table is read keeps a million adds linear.
    mutable std::optional<std::vector<EamEntry>> eamt_;
    mutable std::vector<std::pair<EamEntry, bool>> eamt_writes_;
};

}  // namespace xlat64
