/* Repeated create/free cycles must not grow memory: ports opened, used and
** freed; procs and instances created and freed; buffers and messages
** freed. Valgrind's leak check covers the C heap; this covers what it
** cannot see, the Go heap and the runtime's resources (goroutines, fds,
** sockets), through the process's resident set size.
**
** usage: memgrowth [ROUNDS]
** Prints the RSS after each round; fails if the last round's RSS exceeds
** the first (warm-up) round's by more than the bound.
*/
#include "testutil.h"

#define PORTS_PER_ROUND 10000
#define PROCS_PER_ROUND 200
#define BOUND_KB (16 * 1024)

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int open_fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static void round_trip(mesh_proc_t proc, mesh_instance_t inst) {
    static const uint8_t one[] = {0x01};
    for (int i = 0; i < PORTS_PER_ROUND; i++) {
        mesh_port_t port;
        mesh_buf_t ref;
        CHECK_OK(mesh_port_open(inst, i & 1, &port, &ref));
        if (i % 4 == 0) {
            mesh_msg_t m;
            CHECK_OK(mesh_send(inst, ref.data, ref.len, "int", one, sizeof one));
            CHECK_OK(mesh_port_recv(port, 5000, &m));
            mesh_msg_free(&m);
        }
        mesh_buf_free(&ref);
        if (i % 2 == 0) CHECK_OK(mesh_port_close(port));
        mesh_handle_free(port);
    }
    for (int i = 0; i < PROCS_PER_ROUND; i++) {
        mesh_proc_t p;
        mesh_instance_t in;
        mesh_buf_t id;
        CHECK_OK(mesh_proc_create(i % 2 ? "local:0" : "unix:", "cycle", &p));
        CHECK_OK(mesh_proc_id(p, &id));
        CHECK_OK(mesh_instance_create(p, "client", &in));
        mesh_buf_free(&id);
        mesh_handle_free(in);
        mesh_handle_free(p);
    }
    (void)proc;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 2) rounds = 2;
    int fds_start = open_fds();
    CHECK_OK(mesh_init(NULL));
    mesh_proc_t proc;
    mesh_instance_t inst;
    CHECK_OK(mesh_proc_create("unix:", "root", &proc));
    CHECK_OK(mesh_instance_create(proc, "client", &inst));
    long first = 0, last = 0;
    int fds_first = 0, fds_last = 0;
    for (int r = 0; r < rounds; r++) {
        round_trip(proc, inst);
        last = rss_kb();
        fds_last = open_fds();
        if (r == 0) first = last, fds_first = fds_last;
        printf("round %d: %d ports and %d procs opened and freed: rss %ld KiB, %d fds\n", r, PORTS_PER_ROUND,
               PROCS_PER_ROUND, last, fds_last);
    }
    printf("rss growth after warm-up: %ld KiB (bound %d KiB)\n", last - first, BOUND_KB);
    EXPECT(last - first <= BOUND_KB, "rss grew by %ld KiB over %d rounds", last - first, rounds - 1);
    /* Freed procs shut down in the background; mesh_shutdown waits for
    ** them, after which every fd the library opened must be closed. */
    CHECK_OK(mesh_shutdown(10000));
    int fds_end = open_fds();
    printf("fds: %d at the start, %d after the last round, %d after mesh_shutdown\n", fds_start, fds_last, fds_end);
    /* The Go runtime keeps 4 fds of its own for the life of the process
    ** (the netpoller's epoll and eventfd, the cgroup CPU quota files). */
    EXPECT(fds_end <= fds_start + 4, "fds grew from %d to %d", fds_start, fds_end);
    (void)fds_first;
    return tu_finish("memgrowth");
}
