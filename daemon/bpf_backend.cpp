#include "daemon/bpf_backend.h"

#include <time.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "daemon/log.h"
#include "daemon/nat64_runtime.h"
#include "netlink/bpffs.h"
#include "netlink/device_routes.h"
#include "netlink/links.h"
#include "netlink/tc_program.h"

namespace xlat64 {
namespace {

std::unique_ptr<BpfTranslator> load_translator(const std::filesystem::path& pin_dir) {
    ensure_pin_dir(pin_dir);
    BpfLoadOptions options;
    options.pin_dir = pin_dir;
    options.l2_header_len = 0;  // the tun device has no link-layer header
    return std::make_unique<BpfTranslator>(options);
}

template <typename... F>
struct Overloaded : F... {
    using F::operator()...;
};

// An integer sysctl of the daemon's network namespace; 0 when it is absent (an interface with
// IPv4 disabled has no conf directory: nothing to filter).
int read_ipv4_conf(const std::string& ifname, const char* key) {
    std::ifstream file("/proc/sys/net/ipv4/conf/" + ifname + "/" + key);
    int value = 0;
    return file >> value ? value : 0;
}

// The kernel applies the larger of conf/all and conf/IFNAME (0 off, 1 strict, 2 loose).
int effective_rp_filter(const std::string& ifname) {
    return std::max(read_ipv4_conf("all", "rp_filter"), read_ipv4_conf(ifname, "rp_filter"));
}

TcProgram ingress_filter(int ifindex, const std::string& ifname) {
    return TcProgram(ifindex, ifname, TcDirection::ingress);
}

// Every interface of the namespace carrying xlat64's ingress filter. One tc query per
// interface with a clsact qdisc: the kernel has no dump of filters across devices.
std::vector<IngressAttachment> find_ingress_attachments(NlSocket& sock) {
    std::vector<int> clsact = interfaces_with_clsact(sock);
    std::sort(clsact.begin(), clsact.end());
    std::vector<IngressAttachment> out;
    for (const LinkInfo& link : list_links(sock)) {
        if (!std::binary_search(clsact.begin(), clsact.end(), link.ifindex)) {
            continue;
        }
        if (auto program = ingress_filter(link.ifindex, link.name).attached_ingress_program()) {
            out.push_back(IngressAttachment{link.ifindex, link.name, program->id});
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<Counter> to_counters(const auto& stats, const auto& infos) {
    std::vector<Counter> out;
    for (size_t i = 0; i < stats.size(); ++i) {
        out.push_back(Counter{infos[i].name, stats[i].packets, stats[i].bytes, infos[i].is_drop,
                              infos[i].help, infos[i].is_event});
    }
    return out;
}

}  // namespace

BpfBackend::BpfBackend(std::string device_name, const std::filesystem::path& pin_dir)
    : device_(sock_, std::move(device_name)) {
    // Checked before anything is loaded or pinned: a foreign device means we touch nothing.
    if (auto state = device_.observe(); state && !state->managed) {
        throw std::runtime_error(not_managed_message(device_.name()));
    }
    translator_ = load_translator(pin_dir);
}

// The table name when the configuration has no nat64 section: the default, so that removing the
// section removes the table it made.
static std::string nat_table_name(const std::optional<Nat64Config>& nat64) {
    return nat64 ? nat64->table : Nat64Config{}.table;
}

static NftNatShape nat_shape_or_default(const std::optional<Nat64Config>& nat64) {
    return nat64_nft_shape(nat64.value_or(Nat64Config{}));
}

// The table's state; when it is current, also the indexes its trusted_ifaces set holds.
NatTableState BpfBackend::observe_nat_table(const DesiredState& want,
                                            std::vector<uint32_t>& trusted_ifindexes) {
    NftNatTable table(nft_sock_, nat_table_name(want.nat64), nat_table_shape(want));
    switch (table.observe()) {
        case NftNatTable::State::absent:
            return NatTableState::absent;
        case NftNatTable::State::foreign:
            return NatTableState::foreign;
        case NftNatTable::State::ours:
            break;
    }
    if (!table.structure_matches()) {
        return NatTableState::other_shape;
    }
    trusted_ifindexes = table.read_trusted_ifindexes();
    return NatTableState::current;
}

Nat64Maps BpfBackend::nat64_maps(uint8_t subscriber_len) const {
    return Nat64Maps(translator_->nat64_map_fds(), subscriber_len);
}

ObservedState BpfBackend::observe(const DesiredState& want) {
    finish_pending_changes();
    ObservedState have;
    have.device = device_.observe();
    if (have.device && have.device->managed) {
        const int ifindex = have.device->ifindex;
        have.routes = DeviceRoutes(sock_, ifindex, device_.name()).list();
        if (auto attached = device_egress(ifindex).attached()) {
            have.attached_program_id = attached->id;
            // Equal tags mean equal instructions: the program a previous daemon attached keeps
            // running (it uses the same pinned maps) and nothing is swapped.
            have.program_current =
                normalize_tag(attached->tag) == normalize_tag(translator_->program_tag());
        }
    }
    if (auto settings = translator_->settings()) {
        have.pool6 = settings->pool6;
        have.translation = settings->translation;
        have.nat64 = settings->nat64;
    } else {
        have.pool6.reset();
        have.translation.reset();
    }
    have.eamt = translator_->eamt();  // sorted
    have.nat64_prefixes = nat64_maps(0).prefixes();
    have.nat_table = observe_nat_table(want, have.nat_trusted_ifindexes);
    have.ingress_links = observe_ingress_links(want.ingress_interfaces);
    have.ingress_attached = find_ingress_attachments(sock_);
    return have;
}

BpfTranslator& BpfBackend::ingress_translator(uint32_t l2_header_len) {
    auto& instance = ingress_translators_[l2_header_len];
    if (!instance) {
        BpfLoadOptions options;
        options.pin_dir = translator_->pin_dir();
        options.l2_header_len = l2_header_len;
        options.at_ingress = true;
        options.share_maps_with = translator_.get();
        instance = std::make_unique<BpfTranslator>(options);
    }
    return *instance;
}

std::vector<IngressLink> BpfBackend::observe_ingress_links(const std::vector<std::string>& names) {
    std::vector<IngressLink> out;
    if (names.empty()) {
        return out;
    }
    const std::vector<std::string> with_ipv4 = interfaces_with_ipv4_address();
    for (const std::string& name : names) {
        if (auto link = observe_ingress_link(name, with_ipv4)) {
            out.push_back(std::move(*link));
        }
    }
    return out;
}

std::optional<IngressLink> BpfBackend::observe_ingress_link(
    const std::string& name, const std::vector<std::string>& with_ipv4) {
    auto info = find_link_info(sock_, name);
    if (!info) {
        return std::nullopt;
    }
    IngressLink link;
    link.name = name;
    link.ifindex = info->ifindex;
    link.link_type = arptype_name(info->arptype);
    link.l2_header_len = l2_header_len_of(info->arptype);
    link.rp_filter = effective_rp_filter(name);
    link.has_ipv4_address = std::binary_search(with_ipv4.begin(), with_ipv4.end(), name);
    if (auto attached = ingress_filter(link.ifindex, name).attached()) {
        if (attached->name != kIngressProgramName) {
            link.foreign_program = attached->name;
        } else {
            link.attached_id = attached->id;
            // Equal tags: the instructions this daemon would attach. The link-layer header
            // length is a constant outside them; it follows from the interface's type, which an
            // interface keeps for its life.
            link.attached_current =
                link.l2_header_len &&
                normalize_tag(attached->tag) ==
                    normalize_tag(ingress_translator(*link.l2_header_len).program_tag());
        }
    }
    return link;
}

int BpfBackend::device_ifindex() {
    auto state = device_.observe();
    if (!state || !state->managed) {
        throw std::runtime_error(state ? not_managed_message(device_.name())
                                       : "device " + device_.name() + " does not exist");
    }
    return state->ifindex;
}

void BpfBackend::apply(const Change& change) {
    if (std::holds_alternative<change::EnsureNatTable>(change) ||
        std::holds_alternative<change::SetTrustedIngress>(change) ||
        std::holds_alternative<change::SetNatBlocks>(change) ||
        std::holds_alternative<change::RemoveNatTable>(change)) {
        finish_pending_changes();
    }
    std::visit(Overloaded{
                   [&](const change::CreateDevice& c) { device_.create(c.mtu); },
                   [&](const change::SetDeviceMtu& c) { device_.set_mtu(c.to); },
                   [&](const change::DisableAddrGen&) { device_.disable_addr_gen(); },
                   [&](const change::SetDeviceUp&) { device_.set_up(); },
                   [&](const change::RemoveRoute& c) {
                       DeviceRoutes(sock_, device_ifindex(), device_.name()).remove(c.route);
                   },
                   [&](const change::RemoveEam& c) { translator_->remove_eam(c.entry); },
                   [&](const change::SetSettings& c) { translator_->set_settings(*c.to); },
                   [&](const change::AddEam& c) { translator_->add_eam(c.entry); },
                   [&](const change::AttachProgram&) {
                       device_egress(device_ifindex()).attach(translator_->program_fd());
                   },
                   [&](const change::AddRoute& c) {
                       DeviceRoutes(sock_, device_ifindex(), device_.name()).add(c.route);
                   },
                   [&](const change::EnsureNatTable& c) {
                       NftNatTable(nft_sock_, c.table, c.shape).ensure();
                   },
                   [&](const change::SetNatBlocks& c) { set_nat_blocks(c); },
                   [&](const change::SetNat64Prefixes& c) { nat64_maps(0).set_prefixes(c.to); },
                   [&](const change::ResetNat64State& c) { reset_nat64(c); },
                   [&](const change::QueueFreeBlocks& c) {
                       nat64_maps(0).push_free_blocks(nat64_free_order(*c.config, c.first, c.last));
                   },
                   [&](const change::RemoveNatTable& c) {
                       NftNatTable(nft_sock_, c.table, nat_shape_or_default(std::nullopt)).remove();
                   },
                   [&](const change::AttachIngress& c) { attach_ingress(c); },
                   [&](const change::DetachIngress& c) { detach_ingress(c); },
                   [&](const change::SetTrustedIngress& c) {
                       NftNatTable(nft_sock_, c.table, nat_shape_or_default(std::nullopt))
                           .set_trusted_ifindexes(ifindexes_of(c.to));
                   },
               },
               change);
}

TcProgram BpfBackend::device_egress(int ifindex) const {
    return TcProgram(ifindex, device_.name(), TcDirection::egress);
}

void BpfBackend::attach_ingress(const change::AttachIngress& c) {
    ingress_filter(c.ifindex, c.ifname).attach(ingress_translator(c.l2_header_len).program_fd());
}

void BpfBackend::detach_ingress(const change::DetachIngress& c) {
    if (!ingress_filter(c.ifindex, c.ifname).detach()) {
        log_warning("the tc ingress filter of " + c.ifname +
                    " is no longer xlat64's; left in place");
    }
}

void BpfBackend::apply_eams(std::span<const Change> changes) {
    std::vector<EamEntry> entries;
    entries.reserve(changes.size());
    for (const Change& change : changes) {
        if (const auto* add = std::get_if<change::AddEam>(&change)) {
            entries.push_back(add->entry);
        } else {
            entries.push_back(std::get<change::RemoveEam>(change).entry);
        }
    }
    if (std::holds_alternative<change::AddEam>(changes.front())) {
        translator_->add_eams(entries);
    } else {
        translator_->remove_eams(entries);
    }
}

void BpfBackend::set_nat_blocks(const change::SetNatBlocks& c) {
    auto fill = [config = c.config, first = c.first, last = c.last,
                 replace = c.replace](NftSocket& sock) {
        NftNatTable table(sock, config->table, nat64_nft_shape(*config));
        auto blocks = nat64_nat_blocks(*config, first, last);
        replace ? table.replace_blocks(blocks) : table.add_blocks(blocks);
    };
    if (!c.new_table) {
        fill(nft_sock_);
        return;
    }
    nat_fill_ = std::async(std::launch::async, [fill, what = describe(Change(c))] {
        try {
            NftSocket sock;
            fill(sock);
        } catch (const std::exception& e) {
            throw std::runtime_error(what + " failed: " + e.what());
        }
    });
}

// Also called before anything reads or changes the nftables table (observe, status, the next
// table change) in case a caller did not: get() empties the future, so an error is thrown once.
void BpfBackend::finish_pending_changes() {
    if (nat_fill_.valid()) {
        nat_fill_.get();
    }
}

std::vector<Counter> BpfBackend::counters() {
    return to_counters(translator_->read_stats(), stat_infos());
}

std::vector<Counter> BpfBackend::ingress_counters() {
    return to_counters(translator_->read_ingress_stats(), ingress_stat_infos());
}

nlohmann::json BpfBackend::program_status(int ifindex) const {
    nlohmann::json program = {{"attached", false},
                              {"loaded_id", translator_->program_id()},
                              {"loaded_tag", translator_->program_tag()}};
    if (ifindex == 0) {
        return program;
    }
    if (auto attached = device_egress(ifindex).attached()) {
        program["attached"] = true;
        program["id"] = attached->id;
        program["tag"] = attached->tag;
    }
    return program;
}

nlohmann::json BpfBackend::status() {
    finish_pending_changes();
    auto device = device_.observe();
    const bool ours = device && device->managed;
    nlohmann::json result;
    result["device"] = {{"name", device_.name()},
                        {"present", device.has_value()},
                        {"managed", ours},
                        {"ifindex", device ? device->ifindex : 0},
                        {"mtu", device ? device->mtu : 0},
                        {"up", device && device->up}};
    result["program"] = program_status(ours ? device->ifindex : 0);
    auto pool6 = translator_->pool6();
    result["pool6"] = pool6 ? nlohmann::json(to_string(*pool6)) : nlohmann::json(nullptr);
    result["eamt_entries"] = translator_->eamt_size();
    result["pin_dir"] = translator_->pin_dir().string();
    result["routes"] =
        ours ? DeviceRoutes(sock_, device->ifindex, device_.name()).list().size() : 0;
    return result;
}

// One configured ingress interface for the status: attached (program id), missing, not
// attached, outdated (another build's program), or the problem that keeps the fast path off.
static nlohmann::json ingress_entry(const std::string& name,
                                    const std::optional<IngressLink>& link) {
    nlohmann::json entry = {{"name", name}};
    if (!link) {
        entry["state"] = "missing";
        return entry;
    }
    entry["ifindex"] = link->ifindex;
    entry["link_type"] = link->link_type;
    entry["rp_filter"] = link->rp_filter;
    if (link->attached_id) {
        entry["program_id"] = *link->attached_id;
    }
    const auto problem = ingress_problem(*link);
    if (link->attached_id && link->attached_current) {
        entry["state"] = "attached";
        if (problem) {
            entry["warning"] = *problem;  // e.g. rp_filter made strict after the attach
        }
    } else if (problem) {
        entry["state"] = "error";
        entry["error"] = *problem;
    } else {
        // Only between a failed reload and the next good one.
        entry["state"] = link->attached_id ? "outdated" : "not attached";
    }
    return entry;
}

// The interface indexes the NAT64 table TABLE trusts internal sources from; nullopt when it
// cannot be read (no such table yet: a failed start), which the status leaves unsaid.
std::optional<std::vector<uint32_t>> BpfBackend::nat_trusted_ifindexes(const std::string& table) {
    try {
        finish_pending_changes();
        NftNatTable nat(nft_sock_, table, nat_shape_or_default(std::nullopt));
        if (nat.observe() != NftNatTable::State::ours) {
            return std::nullopt;
        }
        return nat.read_trusted_ifindexes();
    } catch (const std::exception& e) {
        log_warning("status: reading the trusted interfaces of nftables table ip " + table + ": " +
                    e.what());
        return std::nullopt;
    }
}

nlohmann::json BpfBackend::ingress_status(const std::vector<std::string>& configured,
                                          const std::optional<std::string>& nat_table) {
    nlohmann::json out = nlohmann::json::array();
    if (configured.empty()) {
        return out;
    }
    const std::vector<std::string> with_ipv4 = interfaces_with_ipv4_address();
    const auto trusted = nat_table ? nat_trusted_ifindexes(*nat_table) : std::nullopt;
    for (const std::string& name : configured) {
        try {
            const auto link = observe_ingress_link(name, with_ipv4);
            nlohmann::json entry = ingress_entry(name, link);
            // Whether stateful NAT64 accepts internal sources arriving there: only by the index
            // of an interface carrying the program (plan.h, ingress_trust).
            if (link && trusted) {
                entry["nat64_trusted"] = std::binary_search(trusted->begin(), trusted->end(),
                                                            static_cast<uint32_t>(link->ifindex));
            }
            out.push_back(std::move(entry));
        } catch (const std::exception& e) {
            out.push_back({{"name", name}, {"state", "error"}, {"error", e.what()}});
        }
    }
    return out;
}

void BpfBackend::reset_nat64(const change::ResetNat64State& c) {
    Nat64Maps maps = nat64_maps(c.config ? c.config->subscriber_length : 0);
    maps.flush();
    if (!c.config || c.config->mode != Nat64Mode::dynamic) {
        return;
    }
    // The store's unique indexes already keep a block and a subscriber to one open allocation
    // each; a block beyond the layout or seen twice is skipped all the same, so the batches below
    // can never give one block to two subscribers.
    const uint64_t count = nat64_block_count(*c.config);
    std::vector<bool> leased(count, false);
    std::vector<std::pair<Ipv6Prefix, uint32_t>> restored;
    restored.reserve(c.leases.size());
    for (const RestoredLease& lease : c.leases) {
        if (lease.block < count && !leased[lease.block]) {
            leased[lease.block] = true;
            restored.emplace_back(lease.subscriber, lease.block);
        }
    }
    maps.restore_leases(restored, c.leased_ns);
    std::vector<uint32_t> free;
    for (uint32_t block : nat64_free_order(*c.config, 0, count)) {
        if (!leased[block]) {
            free.push_back(block);
        }
    }
    maps.push_free_blocks(free);
}

std::unique_ptr<Nat64Runtime> BpfBackend::nat64_runtime(Nat64Ledger& ledger) {
    finish_pending_changes();
    return std::make_unique<Nat64Runtime>(ledger, nat64_maps(ledger.config().subscriber_length),
                                          nft_sock_, device_.name());
}

// Our ingress filters come off every interface, configured or not (the configuration may have
// changed since they were attached); a filter at our handle running another program stays.
static void teardown_ingress(NlSocket& sock) {
    for (const IngressAttachment& a : find_ingress_attachments(sock)) {
        if (ingress_filter(a.ifindex, a.ifname).detach()) {
            log_info("teardown: removed the ingress fast path from " + a.ifname +
                     " (its clsact qdisc stays)");
        }
    }
}

void teardown_bpf_backend(const Config& config) {
    NlSocket sock;
    teardown_ingress(sock);
    TunDevice device(sock, config.device.name);
    auto state = device.observe();
    if (!state) {
        log_info("teardown: no device " + device.name());
    } else if (!state->managed) {
        log_warning("teardown: device " + device.name() +
                    " is not managed by xlat64d (no xlat64 alias); left in place");
    } else {
        device.remove();
        log_info("teardown: removed device " + device.name() +
                 " (its routes and tc filter went with it)");
    }
    NftSocket nft;
    NftNatTable table(nft, nat_table_name(config.nat64), nat_shape_or_default(config.nat64));
    switch (table.observe()) {
        case NftNatTable::State::absent:
            log_info("teardown: no nftables table ip " + table.name());
            break;
        case NftNatTable::State::foreign:
            log_warning("teardown: nftables table ip " + table.name() +
                        " is not managed by xlat64d (no xlat64 comment); left in place");
            break;
        case NftNatTable::State::ours:
            table.remove();
            log_info("teardown: removed nftables table ip " + table.name());
            break;
    }
    const bool had_pins = std::filesystem::exists(config.bpf_pin_dir);
    BpfTranslator::remove_pins(config.bpf_pin_dir);
    log_info(had_pins ? "teardown: removed the map pins under " + config.bpf_pin_dir.string()
                      : "teardown: no pin directory " + config.bpf_pin_dir.string());
}

}  // namespace xlat64
