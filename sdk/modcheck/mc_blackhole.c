/*
 * mc_blackhole.c - a TCP server on 127.0.0.1 that accepts connections and
 * never answers, for the timeout check: with --timeout-key the section's
 * base URL points here, so every provider call the module makes ends in
 * the host's timeout and must come back as PAYD_E_TRANSIENT.
 *
 * The socket listens from mc_blackhole_start (the port goes into the
 * config before the module loads); the accepting thread starts only with
 * the timeout phase (mc_blackhole_accept), so modules_load forks its init
 * probes from a process with one thread. Until then the kernel's backlog
 * holds connections, which do not answer either.
 */
#include "modcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BLACKHOLE_MAX 512

static struct {
    int fd;
    int stop[2];
    pthread_t thread;
    int running;
    int conns[BLACKHOLE_MAX];
    int count;
} hole = {.fd = -1, .stop = {-1, -1}};

/* Accepts connections and holds them open without reading or answering,
 * until told to stop. */
static void *blackhole_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = hole.fd, .events = POLLIN}, {.fd = hole.stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[1].revents) break;
        int fd = accept4(hole.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        if (hole.count == BLACKHOLE_MAX) {
            close(hole.conns[0]);
            memmove(hole.conns, hole.conns + 1, (BLACKHOLE_MAX - 1) * sizeof hole.conns[0]);
            hole.count--;
        }
        hole.conns[hole.count++] = fd;
    }
    return NULL;
}

int mc_blackhole_start(void)
{
    hole.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (hole.fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(hole.fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(hole.fd, 128) != 0 ||
        getsockname(hole.fd, (struct sockaddr *)&sa, &sl) != 0 || pipe2(hole.stop, O_CLOEXEC) != 0) {
        mc_blackhole_stop();
        return -1;
    }
    return ntohs(sa.sin_port);
}

/* Starts accepting (the listener exists since mc_blackhole_start; until
 * now the kernel queued connections in its backlog, which does not answer
 * either). Started late so that modules_load forks no extra thread. */
void mc_blackhole_accept(void)
{
    if (hole.fd >= 0 && !hole.running && pthread_create(&hole.thread, NULL, blackhole_main, NULL) == 0)
        hole.running = 1;
}

void mc_blackhole_stop(void)
{
    if (hole.running) {
        ssize_t wr = write(hole.stop[1], "x", 1);
        (void)wr;
        pthread_join(hole.thread, NULL);
        hole.running = 0;
    }
    for (int i = 0; i < hole.count; i++) close(hole.conns[i]);
    hole.count = 0;
    for (int i = 0; i < 2; i++)
        if (hole.stop[i] >= 0) close(hole.stop[i]);
    if (hole.fd >= 0) close(hole.fd);
    hole.fd = hole.stop[0] = hole.stop[1] = -1;
}
