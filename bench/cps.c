// New TCP connections per second, the same tool for every mode of the data-plane benchmark.
//
// C17 and libc only: client and server share the machine's two CPUs with the router's path, so
// the less CPU they take per connection, the more the figure measures the path, not the tool.
//
//   xlat64-cps serve --port P
//       Dual-stack (IPv4 and IPv6) listener on P: accepts each connection and closes it at once,
//       so the server does the active close (its TIME_WAIT, not the client's).
//   xlat64-cps wait-listening --to ADDR --port P
//       Waits (up to 10 s) until ADDR:P accepts a connection.
//   xlat64-cps run --to ADDR --port P --seconds S [--concurrency C] [--source ADDR]
//       Keeps C (default 32) connections in flight for S seconds. One connection = SYN, SYN-ACK,
//       ACK, the server's FIN, the client's FIN: it counts once the client has seen the server's
//       FIN (the end-of-file), then the client closes (passive close: no TIME_WAIT on the client)
//       and opens the next. A connection stuck for more than 3 s, or one that fails, counts as an
//       error and is replaced. Prints JSON:
//       {"connections": N, "seconds": T, "cps": N/T, "errors": E}.
//
// Every connection is a full handshake and an orderly close through the translator: no SO_LINGER
// resets, no data, nothing that would let a connection skip part of the path.
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24  // <linux/in.h>; older libc headers lack it
#endif

enum {
    LISTEN_BACKLOG = 4096,
    MAX_CONCURRENCY = 65536,
    MAX_ERROR_MESSAGES = 5,  // the first few failures, with context; the JSON counts them all
};
static const double STUCK_SECONDS = 3;     // a lost SYN waits 1 s for its retransmission
static const double RETRY_SECONDS = 0.01;  // the server's back-off on a shortage
// How often stuck connections are given up and failed slots reopened: a failure that persists
// (EADDRNOTAVAIL when the source address is gone) is retried 10 times a second, not in a loop
// that would take the CPU the path needs.
static const double SWEEP_SECONDS = 0.1;
static const double WAIT_LISTENING_SECONDS = 10;

struct address {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[INET6_ADDRSTRLEN + 8];  // "[v6]:port" or "v4:port", for messages
};

struct options {
    const char* to;
    const char* source;
    int port;
    double seconds;
    int concurrency;
};

// --- Helpers ---------------------------------------------------------------------------------

static double now_seconds(void) {
    struct timespec ts;
    // CLOCK_MONOTONIC cannot fail with a valid pointer; checked anyway so a broken clock is seen.
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// Numeric addresses only: the benchmark passes nothing else, and no resolver runs in the loop.
static bool parse_address(const char* text, int port, struct address* out) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in* v4 = (struct sockaddr_in*)&out->ss;
    struct sockaddr_in6* v6 = (struct sockaddr_in6*)&out->ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
        snprintf(out->text, sizeof out->text, "%s:%d", text, port);
        return true;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *v6;
        snprintf(out->text, sizeof out->text, "[%s]:%d", text, port);
        return true;
    }
    fprintf(stderr, "xlat64-cps: '%s' is not a numeric IPv4 or IPv6 address\n", text);
    return false;
}

// --- serve -----------------------------------------------------------------------------------

static int listen_dual_stack(int port) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("xlat64-cps: socket(AF_INET6)");
        return -1;
    }
    int one = 1, zero = 0;
    struct sockaddr_in6 any = {
        .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT};
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
        perror("xlat64-cps: setsockopt on the listener");
        close(fd);
        return -1;
    }
    if (bind(fd, (struct sockaddr*)&any, sizeof any) != 0) {
        fprintf(stderr, "xlat64-cps: bind to [::]:%d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "xlat64-cps: listen on [::]:%d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

// A blocking listener: the server has nothing to do but accept and close, so a blocking accept4
// costs one system call per connection (it sleeps in the kernel until one is queued), where a
// nonblocking one under epoll costs epoll_wait plus a final accept4 that fails with EAGAIN per
// batch. The peer address is not asked for: copying it out is work nobody reads.
static int serve(const struct options* o) {
    int fd = listen_dual_stack(o->port);
    if (fd < 0) {
        return 1;
    }
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0) {
            // No data was read or written: close() sends the FIN (an orderly close, no RST).
            if (close(c) != 0) {
                perror("xlat64-cps: close of an accepted connection");
            }
            continue;
        }
        switch (errno) {
            // The client gave up before we got to it (its error, counted there), or, as accept(2)
            // says of Linux, a network error already pending on the new connection: retry.
            case EINTR:
            case ECONNABORTED:
            case ENETDOWN:
            case EPROTO:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                // Transient shortage: back off instead of spinning on the queued connection.
                perror("xlat64-cps: accept4");
                sleep_seconds(RETRY_SECONDS);
                continue;
            default:
                perror("xlat64-cps: accept4");
                close(fd);
                return 1;
        }
    }
}

// --- wait-listening --------------------------------------------------------------------------

// One connection attempt, given up after 1 s (a lost SYN would otherwise wait for its retries).
static bool try_connect(const struct address* to) {
    int fd = socket(to->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("xlat64-cps: socket");
        return false;
    }
    bool ok = false;
    if (connect(fd, (const struct sockaddr*)&to->ss, to->len) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
            ok = err == 0;
        }
    }
    close(fd);
    return ok;
}

static int wait_listening(const struct options* o) {
    struct address to;
    if (!parse_address(o->to, o->port, &to)) {
        return 2;
    }
    double deadline = now_seconds() + WAIT_LISTENING_SECONDS;
    while (now_seconds() < deadline) {
        if (try_connect(&to)) {
            return 0;
        }
        sleep_seconds(0.1);
    }
    fprintf(stderr, "xlat64-cps: nothing accepted connections at %s within %.0f s\n", to.text,
            WAIT_LISTENING_SECONDS);
    return 1;
}

// --- run -------------------------------------------------------------------------------------

// One slot per connection in flight: epoll's data is the slot's index.
struct slot {
    int fd;         // -1: empty, reopened at the next sweep
    double opened;  // when connect() was called, for the 3 s limit
};

struct client {
    const struct options* o;
    struct address to, source;
    bool has_source;
    int epfd;
    struct slot* slots;
    long long done, errors;
    int messages;  // error messages printed so far
};

// what: the step that failed ("connect to"), completed with the destination; why: the cause.
static void count_error(struct client* cl, const char* what, const char* why) {
    cl->errors++;
    if (cl->messages < MAX_ERROR_MESSAGES) {
        cl->messages++;
        fprintf(stderr, "xlat64-cps: %s %s: %s%s\n", what, cl->to.text, why,
                cl->messages == MAX_ERROR_MESSAGES ? " (further errors only counted)" : "");
    }
}

static void empty_slot(struct client* cl, struct slot* s) {
    // close() also removes the socket from the epoll set (the only reference to it): no
    // EPOLL_CTL_DEL, one system call less per connection.
    if (s->fd >= 0 && close(s->fd) != 0) {
        count_error(cl, "close of connection to", strerror(errno));
    }
    s->fd = -1;
}

static int new_socket(struct client* cl) {
    int fd = socket(cl->to.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_error(cl, "socket for", strerror(errno));
        return -1;
    }
    if (!cl->has_source) {
        return fd;
    }
    // The address only: connect() then picks the port as it does without bind(), so a mode that
    // names its source pays no extra port search (bind(addr, 0) alone would search the bind table
    // for a free port at every connection). IPPROTO_IP also applies to IPv6 sockets here.
    int one = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) {
        count_error(cl, "IP_BIND_ADDRESS_NO_PORT for", strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (const struct sockaddr*)&cl->source.ss, cl->source.len) != 0) {
        count_error(cl, "bind to the source for", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

// Opens the slot's connection: nonblocking, so EINPROGRESS is the normal answer; the socket
// becomes readable at the server's FIN (EOF) or on an error (EPOLLERR, EPOLLHUP).
static void open_slot(struct client* cl, int index, double now) {
    struct slot* s = &cl->slots[index];
    s->fd = new_socket(cl);
    if (s->fd < 0) {
        return;  // counted; the next sweep retries
    }
    s->opened = now;
    if (connect(s->fd, (const struct sockaddr*)&cl->to.ss, cl->to.len) != 0 &&
        errno != EINPROGRESS) {
        // EADDRNOTAVAIL (no free port for this source and destination), ENETUNREACH, ...
        count_error(cl, "connect to", strerror(errno));
        empty_slot(cl, s);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)index};
    if (epoll_ctl(cl->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        count_error(cl, "epoll_ctl for", strerror(errno));
        empty_slot(cl, s);
    }
}

// The slot's socket is readable: EOF is a completed connection, reopened at once; data (the
// server sends none) or an error (refused, reset, unreachable) is an error, and the slot waits
// for the next sweep, so that a mode that refuses every connection is not retried in a loop.
static void finish_slot(struct client* cl, int index, double now) {
    struct slot* s = &cl->slots[index];
    char buf[16];
    ssize_t n = recv(s->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;  // not ready after all: keep waiting (the 3 s limit still applies)
    }
    if (n < 0) {
        count_error(cl, "connection to", strerror(errno));
    } else if (n > 0) {
        count_error(cl, "connection to", "the server sent data");
    }
    empty_slot(cl, s);
    if (n == 0) {
        cl->done++;
        open_slot(cl, index, now);
    }
}

// Gives up on connections older than STUCK_SECONDS and reopens the empty slots.
static void sweep_slots(struct client* cl, double now) {
    for (int i = 0; i < cl->o->concurrency; i++) {
        struct slot* s = &cl->slots[i];
        if (s->fd >= 0 && now - s->opened > STUCK_SECONDS) {
            count_error(cl, "connection to", "not closed within 3 s, given up");
            empty_slot(cl, s);
        }
        if (s->fd < 0) {
            open_slot(cl, i, now);
        }
    }
}

// Room for C sockets, the epoll descriptor and stdio: the soft limit is often 1024.
static bool raise_fd_limit(int concurrency) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
        perror("xlat64-cps: getrlimit(RLIMIT_NOFILE)");
        return false;
    }
    rlim_t want = (rlim_t)concurrency + 16;
    if (r.rlim_cur >= want) {
        return true;
    }
    r.rlim_cur = want <= r.rlim_max ? want : r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur < want) {
        fprintf(stderr, "xlat64-cps: cannot open %d files at once (RLIMIT_NOFILE)\n", concurrency);
        return false;
    }
    return true;
}

static int client_loop(struct client* cl) {
    enum { MAX_EVENTS = 256 };
    struct epoll_event events[MAX_EVENTS];
    double start = now_seconds(), end = start + cl->o->seconds, next_sweep = start + SWEEP_SECONDS;
    for (int i = 0; i < cl->o->concurrency; i++) {
        open_slot(cl, i, start);
    }
    double now = start;
    while ((now = now_seconds()) < end) {
        double wait = end - now;
        if (next_sweep - now < wait) {
            wait = next_sweep - now;
        }
        int timeout_ms = wait > 0 ? (int)(wait * 1000) + 1 : 0;
        int n = epoll_wait(cl->epfd, events, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) {
            perror("xlat64-cps: epoll_wait");
            return 1;
        }
        now = now_seconds();
        for (int i = 0; i < n; i++) {
            finish_slot(cl, (int)events[i].data.u32, now);
        }
        if (now >= next_sweep) {
            sweep_slots(cl, now);
            next_sweep = now + SWEEP_SECONDS;
        }
    }
    double elapsed = now - start;
    for (int i = 0; i < cl->o->concurrency; i++) {
        if (cl->slots[i].fd >= 0) {
            close(cl->slots[i].fd);
        }
    }
    printf("{\"connections\": %lld, \"seconds\": %.3f, \"cps\": %.1f, \"errors\": %lld}\n",
           cl->done, elapsed, (double)cl->done / elapsed, cl->errors);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int run(const struct options* o) {
    struct client cl = {.o = o, .epfd = -1};
    if (!parse_address(o->to, o->port, &cl.to)) {
        return 2;
    }
    if (o->source) {
        if (!parse_address(o->source, 0, &cl.source)) {
            return 2;
        }
        if (cl.source.ss.ss_family != cl.to.ss.ss_family) {
            fprintf(stderr, "xlat64-cps: --source %s and --to %s are not the same family\n",
                    o->source, o->to);
            return 2;
        }
        cl.has_source = true;
    }
    if (!raise_fd_limit(o->concurrency)) {
        return 1;
    }
    cl.slots = calloc((size_t)o->concurrency, sizeof *cl.slots);
    if (!cl.slots) {
        perror("xlat64-cps: calloc");
        return 1;
    }
    cl.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (cl.epfd < 0) {
        perror("xlat64-cps: epoll_create1");
        free(cl.slots);
        return 1;
    }
    int rc = client_loop(&cl);
    close(cl.epfd);
    free(cl.slots);
    return rc;
}

// --- Command line ----------------------------------------------------------------------------

static void usage(FILE* f) {
    fputs(
        "usage: xlat64-cps serve --port P\n"
        "       xlat64-cps wait-listening --to ADDR --port P\n"
        "       xlat64-cps run --to ADDR --port P --seconds S [--concurrency C] [--source ADDR]\n",
        f);
}

static bool parse_number(const char* name, const char* text, double min, double max, bool integer,
                         double* out) {
    char* end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= min && v <= max) ||
        (integer && v != (double)(long)v)) {
        fprintf(stderr, "xlat64-cps: --%s %s: not %s from %g to %g\n", name, text,
                integer ? "an integer" : "a number", min, max);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_options(int argc, char** argv, struct options* o) {
    static const struct option longs[] = {
        {"to", required_argument, NULL, 't'},
        {"port", required_argument, NULL, 'p'},
        {"seconds", required_argument, NULL, 's'},
        {"concurrency", required_argument, NULL, 'c'},
        {"source", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double port = -1, concurrency = 32;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
            case 't':
                o->to = optarg;
                break;
            case 'S':
                o->source = optarg;
                break;
            case 'p':
                ok = parse_number("port", optarg, 1, 65535, true, &port);
                break;
            case 's':
                ok = parse_number("seconds", optarg, 0.001, 1e6, false, &o->seconds);
                break;
            case 'c':
                ok = parse_number("concurrency", optarg, 1, MAX_CONCURRENCY, true, &concurrency);
                break;
            case 'h':
                usage(stdout);
                exit(0);
            default:
                ok = false;
        }
        if (!ok) {
            return false;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "xlat64-cps: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    o->port = (int)port;
    o->concurrency = (int)concurrency;
    return true;
}

static bool require(bool present, const char* cmd, const char* option) {
    if (!present) {
        fprintf(stderr, "xlat64-cps: %s needs --%s\n", cmd, option);
    }
    return present;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char* cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    bool known =
        strcmp(cmd, "serve") == 0 || strcmp(cmd, "wait-listening") == 0 || strcmp(cmd, "run") == 0;
    if (!known) {
        fprintf(stderr, "xlat64-cps: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    struct options o = {.port = -1, .seconds = -1};
    if (!parse_options(argc - 1, argv + 1, &o) || !require(o.port > 0, cmd, "port")) {
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "serve") == 0) {
        return serve(&o);
    }
    if (!require(o.to != NULL, cmd, "to")) {
        return 2;
    }
    if (strcmp(cmd, "wait-listening") == 0) {
        return wait_listening(&o);
    }
    return require(o.seconds > 0, cmd, "seconds") ? run(&o) : 2;
}
