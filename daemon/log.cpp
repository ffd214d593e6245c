#include "daemon/log.h"

#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace xlat64 {
namespace {

// JOURNAL_STREAM is inherited by children whose stderr may have been redirected since, so it
// counts only when it names the stderr we actually have (sd_journal_stream_fd(3)).
bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    struct stat info {};
    if (stream == nullptr || fstat(STDERR_FILENO, &info) < 0) {
        return false;
    }
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) {
        return false;
    }
    return device == info.st_dev && inode == info.st_ino;
}

const char* journal_prefix(LogLevel level) {
    switch (level) {
        case LogLevel::error:
            return SD_ERR;
        case LogLevel::warning:
            return SD_WARNING;
        case LogLevel::notice:
            return SD_NOTICE;
        case LogLevel::info:
            return SD_INFO;
        case LogLevel::debug:
            return SD_DEBUG;
    }
    return SD_INFO;
}

int print_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG) {
        return 0;
    }
    char buffer[1024];
    int length = std::vsnprintf(buffer, sizeof(buffer), format, args);
    std::string_view text(buffer, length < 0 ? 0 : std::min<size_t>(length, sizeof(buffer) - 1));
    while (!text.empty() && text.back() == '\n') {
        text.remove_suffix(1);
    }
    // libbpf starts its messages with "libbpf: " itself.
    log_message(level == LIBBPF_WARN ? LogLevel::warning : LogLevel::info, text);
    return length;
}

}  // namespace

void log_message(LogLevel level, std::string_view message) {
    static const bool journal = stderr_is_journal();
    std::string out;
    size_t start = 0;
    while (start <= message.size()) {
        size_t end = message.find('\n', start);
        std::string_view line = message.substr(
            start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (journal) {
            out += journal_prefix(level);
        }
        out.append(line);
        out += '\n';
        if (end == std::string_view::npos || end + 1 == message.size()) {
            break;
        }
        start = end + 1;
    }
    // One write per message, so concurrent writers (none today) cannot interleave its lines.
    std::fwrite(out.data(), 1, out.size(), stderr);
    std::fflush(stderr);
}

void route_libbpf_log() {
    libbpf_set_print(print_libbpf);
}

}  // namespace xlat64
