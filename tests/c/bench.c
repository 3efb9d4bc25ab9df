/* Round-trip latency through the C ABI: the client sends testactor.Echo
** (64 bytes) straight to one TestActor in a proc of its own (one host, one
** proc, as in the canonical test) and waits for the reply on a port.
** tests/c's BenchmarkRoundTrip runs this and the same flow through the Go
** SDK back to back and prints both.
**
** usage: bench BOOTSTRAP_BINARY WARMUP   (then commands on stdin, below)
*/
#include "testutil.h"

#include <poll.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s BOOTSTRAP_BINARY WARMUP\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    if (n < 1) n = 1;
    setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false", 1);
    CHECK_OK(mesh_init(NULL));
    mesh_proc_t proc;
    mesh_instance_t inst;
    mesh_allocator_t alloc;
    mesh_host_mesh_t hm;
    mesh_proc_mesh_t pm;
    mesh_actor_mesh_t am;
    CHECK_OK(mesh_proc_create("unix:", "root", &proc));
    CHECK_OK(mesh_instance_create(proc, "client", &inst));
    CHECK_OK(mesh_allocator_process(argv[1], NULL, NULL, &alloc));
    CHECK_OK(mesh_host_mesh_allocate(inst, alloc, "replicas=1", "bench", 60000, &hm));
    CHECK_OK(mesh_host_mesh_spawn(inst, hm, "p0", "", 60000, &pm));
    CHECK_OK(mesh_actor_mesh_spawn(inst, pm, "a0", "testactor.TestActor", NULL, 0, 60000, &am));
    mesh_buf_t actor;
    CHECK_OK(mesh_actor_mesh_actor_id(am, 0, &actor));

    mesh_port_t port;
    mesh_buf_t ref;
    CHECK_OK(mesh_port_open(inst, 0, &port, &ref));
    uint8_t data[64];
    memset(data, 'x', sizeof data);
    tu_mp req = {0};
    tu_map(&req, 2);
    tu_str(&req, "Data");
    tu_bin(&req, data, sizeof data);
    tu_str(&req, "Reply");
    tu_raw(&req, ref.data, ref.len);

    /* Warm up, then serve "run K" and "poll K" commands from stdin: each
    ** runs K round trips (receiving with mesh_port_recv, or through a
    ** poller's fd) and prints "ns TOTAL". The driver interleaves these blocks
    ** with blocks of the Go SDK's round trips, so that both see the same
    ** machine load. "quit" (or end of input) ends the program. */
    for (int i = 0; i < n; i++) {
        CHECK_OK(mesh_send(inst, actor.data, actor.len, "testactor.Echo", req.b, req.len));
        mesh_msg_t m;
        CHECK_OK(mesh_port_recv(port, 10000, &m));
        mesh_msg_free(&m);
    }
    printf("ready\n");
    fflush(stdout);
    /* A second port, read through a poller's fd as an event loop would. */
    mesh_port_t pport;
    mesh_buf_t pref;
    mesh_poller_t poller;
    int fd;
    CHECK_OK(mesh_port_open(inst, 0, &pport, &pref));
    CHECK_OK(mesh_poller_create(&fd, &poller));
    CHECK_OK(mesh_poller_add(poller, pport, 1));
    tu_mp preq = {0};
    tu_map(&preq, 2);
    tu_str(&preq, "Data");
    tu_bin(&preq, data, sizeof data);
    tu_str(&preq, "Reply");
    tu_raw(&preq, pref.data, pref.len);

    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        int k;
        char mode[16];
        if (sscanf(line, "%15s %d", mode, &k) != 2) break;
        int polled = strcmp(mode, "poll") == 0;
        double t0 = tu_now();
        for (int i = 0; i < k; i++) {
            mesh_msg_t m;
            if (polled) {
                CHECK_OK(mesh_send(inst, actor.data, actor.len, "testactor.Echo", preq.b, preq.len));
                uint64_t tag;
                int32_t rc;
                while ((rc = mesh_poller_next(poller, &tag, &m)) == MESH_AGAIN) {
                    struct pollfd pfd = {fd, POLLIN, 0};
                    poll(&pfd, 1, 10000);
                }
                CHECK_OK(rc);
            } else {
                CHECK_OK(mesh_send(inst, actor.data, actor.len, "testactor.Echo", req.b, req.len));
                CHECK_OK(mesh_port_recv(port, 10000, &m));
            }
            if (m.payload.len < sizeof data) FAILF("short echo");
            mesh_msg_free(&m);
        }
        printf("ns %.0f\n", (tu_now() - t0) * 1e9);
        fflush(stdout);
    }
    tu_free(&req);
    tu_free(&preq);
    mesh_buf_free(&pref);
    mesh_buf_free(&ref);
    mesh_buf_free(&actor);
    CHECK_OK(mesh_host_mesh_shutdown(inst, hm, 60000));
    CHECK_OK(mesh_shutdown(10000));
    return tu_failures ? 1 : 0;
}
