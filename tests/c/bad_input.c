/* Bad input through the C ABI: each call returns the documented error code
** with a non-empty error text, nothing crashes, no process is left.
**
** usage: bad_input BOOTSTRAP_BINARY
*/
#include "testutil.h"

#include <sys/wait.h>

static int32_t dummy_create(void *u, const uint8_t *p, size_t n, void **s) {
    (void)u, (void)p, (void)n;
    *s = NULL;
    return 0;
}
static int32_t dummy_handle(void *s, mesh_ctx_t *c, const char *m, const uint8_t *p, size_t n) {
    (void)s, (void)c, (void)m, (void)p, (void)n;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BOOTSTRAP_BINARY\n", argv[0]);
        return 2;
    }
    setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false", 1);
    mesh_proc_t proc = 0;
    mesh_instance_t inst = 0;
    mesh_port_t port = 0;
    mesh_buf_t buf = {0};
    mesh_msg_t msg = {0};

    /* Before mesh_init. */
    EXPECT_RC(MESH_ESTATE, mesh_proc_create("unix:", "p", &proc));
    EXPECT(proc == 0, "out-parameter not zeroed");
    EXPECT(strcmp(mesh_errmsg(), "") != 0, "no error text");
    EXPECT(mesh_abi_version() == MESH_ABI_VERSION, "abi");
    EXPECT(strcmp(mesh_status_name(MESH_ETOOBIG), "MESH_ETOOBIG") == 0, "status name");
    EXPECT(strcmp(mesh_status_name(12345), "MESH_UNKNOWN") == 0, "status name of junk");

    /* Bad configurations. */
    EXPECT_RC(MESH_EINVAL, mesh_init("{not json"));
    EXPECT_RC(MESH_EINVAL, mesh_init("{\"no_such_key\": 1}"));
    EXPECT_RC(MESH_EINVAL, mesh_init("{\"max_message_size\": -5}"));
    EXPECT_RC(MESH_EINVAL, mesh_init("{\"log_level\": \"loud\"}"));
    CHECK_OK(mesh_init("{\"max_message_size\": 4096, \"log_level\": \"error\"}"));
    EXPECT(strcmp(mesh_errmsg(), "") == 0, "error text after success: %s", mesh_errmsg());
    CHECK_OK(mesh_init(NULL)); /* idempotent */

    /* NULL pointers and malformed text. */
    EXPECT_RC(MESH_EINVAL, mesh_proc_create("unix:", NULL, &proc));
    EXPECT_RC(MESH_EINVAL, mesh_proc_create("unix:", "root", NULL));
    EXPECT_RC(MESH_EINVAL, mesh_proc_create("carrier-pigeon:1", "root", &proc));
    EXPECT_RC(MESH_EINVAL, mesh_proc_create("unix:", "9 bad name", &proc));
    CHECK_OK(mesh_proc_create(NULL, "root", &proc));
    EXPECT_RC(MESH_EINVAL, mesh_instance_create(proc, NULL, &inst));
    EXPECT_RC(MESH_EINVAL, mesh_instance_create(proc, "client", NULL));
    CHECK_OK(mesh_instance_create(proc, "client", &inst));
    mesh_instance_t dup = 1;
    EXPECT_RC(MESH_EINVAL, mesh_instance_create(proc, "client", &dup)); /* name taken */
    EXPECT(dup == 0, "instance out-parameter not zeroed");
    EXPECT_RC(MESH_EINVAL, mesh_port_open(inst, 0, NULL, &buf));
    CHECK_OK(mesh_port_open(inst, 0, &port, NULL));
    EXPECT_RC(MESH_EINVAL, mesh_port_recv(port, 0, NULL));
    EXPECT_RC(MESH_EINVAL, mesh_port_recv(port, -7, &msg));
    EXPECT_RC(MESH_AGAIN, mesh_port_try_recv(port, &msg));
    EXPECT(msg.kind == 0 && msg.payload.data == NULL, "message not zeroed");
    EXPECT_RC(MESH_TIMEOUT, mesh_port_recv(port, 10, &msg));
    EXPECT_RC(MESH_EINVAL, mesh_proc_id(proc, NULL));
    mesh_allocator_t alloc = 0;
    EXPECT_RC(MESH_EINVAL, mesh_allocator_process(NULL, NULL, NULL, &alloc));
    EXPECT_RC(MESH_EINVAL, mesh_allocator_process("/nonexistent/program", NULL, NULL, &alloc));
    const char *bad_env[] = {"NOEQUALS", NULL};
    EXPECT_RC(MESH_EINVAL, mesh_allocator_process(argv[1], NULL, bad_env, &alloc));
    EXPECT(alloc == 0, "allocator out-parameter not zeroed");
    int fd = 0;
    EXPECT_RC(MESH_EINVAL, mesh_poller_create(&fd, NULL));
    EXPECT_RC(MESH_EINVAL, mesh_register_actor_type("demo.X", NULL, NULL));
    mesh_actor_vtable_t half = {dummy_create, NULL, NULL};
    EXPECT_RC(MESH_EINVAL, mesh_register_actor_type("demo.X", &half, NULL));
    mesh_actor_vtable_t vt = {dummy_create, dummy_handle, NULL};
    EXPECT_RC(MESH_EINVAL, mesh_register_actor_type("mesh.ProcAgent", &vt, NULL)); /* reserved */
    EXPECT_RC(MESH_EINVAL, mesh_register_actor_type(NULL, &vt, NULL));

    /* Freed, forged and wrong-kind handles. */
    mesh_port_t freed;
    CHECK_OK(mesh_port_open(inst, 0, &freed, NULL));
    mesh_handle_free(freed);
    mesh_handle_free(freed); /* twice: harmless */
    mesh_handle_free(0);
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_recv(freed, 0, &msg));
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_close(freed));
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_recv(0, 0, &msg));
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_recv(0xdeadbeefcafef00dULL, 0, &msg));
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_recv(port + 1, 0, &msg));
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_recv(inst, 0, &msg));                 /* an instance, not a port */
    EXPECT_RC(MESH_EBADHANDLE, mesh_instance_create(inst, "x", &dup));        /* an instance, not a proc */
    EXPECT_RC(MESH_EBADHANDLE, mesh_port_open(proc, 0, &freed, NULL));        /* a proc, not an instance */
    EXPECT_RC(MESH_EBADHANDLE, mesh_actor_mesh_size(port, (int32_t[]){0}));
    EXPECT_RC(MESH_EBADHANDLE, mesh_value_mesh_get(port, 0, (int32_t[]){0}, &buf));
    EXPECT_RC(MESH_EBADHANDLE, mesh_extent(inst, &buf));
    EXPECT_RC(MESH_EBADHANDLE, mesh_poller_add(port, port, 1));
    mesh_handle_free(0xffffffffffffffffULL); /* forged: harmless */

    /* Garbage refs and payloads. */
    mesh_buf_t ref, self;
    CHECK_OK(mesh_port_open(inst, 0, &freed, &ref)); /* reuses the freed slot */
    EXPECT(freed != port, "handles must differ");
    CHECK_OK(mesh_instance_id(inst, &self));
    static const uint8_t garbage[] = {0xc1, 0xff, 0x00};
    static const uint8_t two_values[] = {0x01, 0x02};
    static const uint8_t truncated[] = {0xa5, 'a', 'b'};
    static const uint8_t one[] = {0x01};
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, garbage, sizeof garbage, NULL, one, 1));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len - 1, NULL, one, 1));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, NULL, 5, NULL, one, 1));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len, NULL, garbage, sizeof garbage));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len, NULL, two_values, sizeof two_values));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len, NULL, truncated, sizeof truncated));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len, NULL, NULL, 0));
    EXPECT_RC(MESH_EINVAL, mesh_send(inst, ref.data, ref.len, NULL, NULL, 3));

    /* Oversized: the limit is 4096 bytes (mesh_init above). */
    tu_mp big = {0};
    uint8_t *blob = calloc(1, 8192);
    tu_bin(&big, blob, 8192);
    EXPECT_RC(MESH_ETOOBIG, mesh_send(inst, ref.data, ref.len, NULL, big.b, big.len));
    EXPECT_RC(MESH_AGAIN, mesh_port_try_recv(freed, &msg)); /* nothing was sent */
    tu_free(&big);
    free(blob);

    /* An instance whose proc was freed (it shuts down in the background):
    ** once its sends fail, they fail with MESH_ECLOSED. */
    {
        mesh_proc_t gone;
        mesh_instance_t orphan;
        mesh_port_t sink;
        mesh_buf_t sink_ref;
        CHECK_OK(mesh_port_open(inst, 0, &sink, &sink_ref));
        CHECK_OK(mesh_proc_create("local:0", "gone", &gone));
        CHECK_OK(mesh_instance_create(gone, "orphan", &orphan));
        mesh_handle_free(gone);
        int32_t rc = MESH_OK;
        for (int i = 0; i < 10000 && rc == MESH_OK; i++) { /* 10 s at most */
            rc = mesh_send(orphan, sink_ref.data, sink_ref.len, NULL, one, 1);
            if (rc == MESH_OK) usleep(1000);
        }
        EXPECT(rc == MESH_ECLOSED, "send from a stopped instance: %s (%s)", mesh_status_name(rc), mesh_errmsg());
        mesh_handle_free(orphan);
        mesh_handle_free(sink);
        mesh_buf_free(&sink_ref);
    }

    /* A good send still works, and its sender is the instance. */
    CHECK_OK(mesh_send(inst, ref.data, ref.len, "int", one, 1));
    CHECK_OK(mesh_port_recv(freed, 5000, &msg));
    EXPECT(msg.kind == MESH_MSG_DATA && msg.payload.len == 1 && msg.payload.data[0] == 1, "good send");
    EXPECT(tu_bufeq(&msg.sender, &self), "sender is not the instance");
    mesh_msg_free(&msg);

    /* A closed port: queued messages drain, then MESH_ECLOSED; later
    ** sends come back undeliverable, with a reason. */
    CHECK_OK(mesh_send(inst, ref.data, ref.len, NULL, one, 1));
    CHECK_OK(mesh_port_close(freed));
    CHECK_OK(mesh_port_close(freed)); /* idempotent */
    CHECK_OK(mesh_port_try_recv(freed, &msg));
    mesh_msg_free(&msg);
    EXPECT_RC(MESH_ECLOSED, mesh_port_recv(freed, 1000, &msg));
    CHECK_OK(mesh_send(inst, ref.data, ref.len, NULL, one, 1));
    CHECK_OK(mesh_next_undeliverable(inst, 10000, &msg));
    EXPECT(msg.kind == MESH_MSG_UNDELIVERABLE && msg.text.len > 0, "undeliverable without a reason");
    EXPECT(tu_bufeq(&msg.sender, &ref), "undeliverable destination is not the port");
    if (getenv("MESH_TEST_VERBOSE")) printf("  undeliverable: %s\n", (char *)msg.text.data);
    mesh_msg_free(&msg);
    mesh_buf_free(&ref);

    /* Pollers: a port in a poller is not read by blocking receives. */
    mesh_poller_t poller;
    CHECK_OK(mesh_poller_create(&fd, &poller));
    CHECK_OK(mesh_poller_add(poller, port, 7));
    EXPECT_RC(MESH_EINVAL, mesh_poller_add(poller, port, 8)); /* already in a poller */
    EXPECT_RC(MESH_EINVAL, mesh_port_recv(port, 10, &msg));
    uint64_t tag;
    EXPECT_RC(MESH_EINVAL, mesh_poller_next(poller, NULL, &msg));
    EXPECT_RC(MESH_AGAIN, mesh_poller_next(poller, &tag, &msg));
    CHECK_OK(mesh_poller_remove(poller, port));
    CHECK_OK(mesh_poller_remove(poller, port)); /* idempotent */
    mesh_handle_free(poller);

    /* Unknown types and names, on a real mesh. */
    {
        mesh_proc_t local;
        CHECK_OK(mesh_proc_create("local:0", "local", &local));
        EXPECT_RC(MESH_ENOTFOUND, mesh_proc_spawn(local, "x", "no.SuchType", NULL, 0, NULL));
        EXPECT_RC(MESH_EINVAL, mesh_proc_spawn(local, "x", "no.SuchType", garbage, sizeof garbage, NULL));
        mesh_handle_free(local);

        CHECK_OK(mesh_allocator_process(argv[1], NULL, NULL, &alloc));
        mesh_host_mesh_t hm;
        EXPECT_RC(MESH_EINVAL, mesh_host_mesh_allocate(inst, alloc, "hosts=0", "h", 1000, &hm));
        EXPECT_RC(MESH_EINVAL, mesh_host_mesh_allocate(inst, alloc, "hosts=1", "bad name!", 1000, &hm));
        EXPECT_RC(MESH_EBADHANDLE, mesh_host_mesh_allocate(inst, inst, "hosts=1", "h", 1000, &hm));
        CHECK_OK(mesh_host_mesh_allocate(inst, alloc, "hosts=1", "h", 60000, &hm));
        mesh_proc_mesh_t pm;
        EXPECT_RC(MESH_EINVAL, mesh_host_mesh_spawn(inst, hm, "p", "hosts=2", 1000, &pm)); /* dup label */
        CHECK_OK(mesh_host_mesh_spawn(inst, hm, "p", "gpus=2", 60000, &pm));
        mesh_actor_mesh_t am;
        EXPECT_RC(MESH_ENOTFOUND, mesh_actor_mesh_spawn(inst, pm, "a", "no.SuchType", NULL, 0, 30000, &am));
        EXPECT(am == 0, "actor mesh out-parameter not zeroed");
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_spawn(inst, pm, "a", "mesh.HostAgent", NULL, 0, 30000, &am));
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_spawn(inst, pm, "a", "testactor.TestActor", garbage, sizeof garbage,
                                                     30000, &am));
        /* The procs remember a failed spawn by name: use another name. */
        CHECK_OK(mesh_actor_mesh_spawn(inst, pm, "a2", "testactor.TestActor", NULL, 0, 30000, &am));
        mesh_actor_mesh_t twin = 1;
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_spawn(inst, pm, "a2", "testactor.TestActor", NULL, 0, 30000, &twin));
        EXPECT(twin == 0, "actor mesh out-parameter not zeroed");
        mesh_actor_mesh_t sub;
        EXPECT_RC(MESH_ENOTFOUND, mesh_actor_mesh_slice(am, "nodim", 0, 1, &sub));
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_slice(am, "gpus", 1, 1, &sub));
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_slice(am, "gpus", 0, 3, &sub));
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_actor_id(am, 2, &buf));
        EXPECT_RC(MESH_EINVAL, mesh_actor_mesh_actor_id(am, -1, &buf));
        EXPECT_RC(MESH_EINVAL, mesh_cast(inst, am, "testactor.Echo", garbage, sizeof garbage));
        EXPECT_RC(MESH_EINVAL, mesh_cast(inst, am, "", one, 1));

        /* An unknown message type comes back undeliverable, naming it. */
        CHECK_OK(mesh_cast(inst, am, "no.SuchMessage", one, 1));
        for (int i = 0; i < 2; i++) {
            CHECK_OK(mesh_next_undeliverable(inst, 10000, &msg));
            EXPECT(msg.kind == MESH_MSG_UNDELIVERABLE && strstr((char *)msg.text.data, "no.SuchMessage"),
                   "undeliverable text: %s", msg.text.data ? (char *)msg.text.data : "");
            mesh_msg_free(&msg);
        }
        /* An unknown method is an error per rank. */
        mesh_value_mesh_t vm;
        CHECK_OK(mesh_call(inst, am, "NoSuchMethod", NULL, 0, 10000, &vm));
        for (int r = 0; r < 2; r++) {
            int32_t status;
            CHECK_OK(mesh_value_mesh_get(vm, r, &status, &buf));
            EXPECT(status == MESH_EREMOTE && strstr((char *)buf.data, "NoSuchMethod"), "rank %d: %s %s", r,
                   mesh_status_name(status), buf.data ? (char *)buf.data : "");
            mesh_buf_free(&buf);
        }
        EXPECT_RC(MESH_EINVAL, mesh_value_mesh_get(vm, 2, (int32_t[]){0}, &buf));
        mesh_handle_free(vm);

        /* A failing actor: the supervised port hears why, casts are refused. */
        mesh_port_t sup;
        CHECK_OK(mesh_port_open(inst, 0, &sup, NULL));
        CHECK_OK(mesh_supervise(inst, am, sup));
        mesh_actor_mesh_t rank1;
        CHECK_OK(mesh_actor_mesh_slice(am, "gpus", 1, 2, &rank1));
        tu_mp failmsg = {0};
        tu_map(&failmsg, 1);
        tu_str(&failmsg, "Msg");
        tu_str(&failmsg, "boom from the test");
        CHECK_OK(mesh_cast(inst, rank1, "testactor.Fail", failmsg.b, failmsg.len));
        tu_free(&failmsg);
        CHECK_OK(mesh_port_recv(sup, 30000, &msg));
        EXPECT(msg.kind == MESH_MSG_SUPERVISION && msg.rank == 1, "supervision kind %d rank %d", msg.kind, msg.rank);
        EXPECT(msg.text.len && strstr((char *)msg.text.data, "boom from the test"), "supervision text: %s",
               msg.text.data ? (char *)msg.text.data : "");
        if (getenv("MESH_TEST_VERBOSE")) printf("  supervision: %s\n", (char *)msg.text.data);
        mesh_msg_free(&msg);
        EXPECT_RC(MESH_ESUPERVISION, mesh_cast(inst, am, "testactor.Echo", one, 1));
        EXPECT_RC(MESH_ESUPERVISION, mesh_call(inst, am, "Echo", one, 1, 1000, &vm));
        /* The healthy slice still works. */
        mesh_actor_mesh_t rank0;
        CHECK_OK(mesh_actor_mesh_slice(am, "gpus", 0, 1, &rank0));
        CHECK_OK(mesh_call(inst, rank0, "Echo", one, 1, 10000, &vm));
        int32_t status;
        CHECK_OK(mesh_value_mesh_get(vm, 0, &status, &buf));
        EXPECT(status == MESH_OK && buf.len == 1 && buf.data[0] == 1, "Echo on the healthy rank");
        mesh_buf_free(&buf);
        mesh_handle_free(vm);

        /* Out of time: MESH_TIMEOUT; the next call waits for the rest. */
        EXPECT_RC(MESH_TIMEOUT, mesh_host_mesh_shutdown(inst, hm, 0));
        CHECK_OK(mesh_host_mesh_shutdown(inst, hm, 60000));
        EXPECT(tu_wait_no_descendants(10) == 0, "processes left after the host mesh shutdown");
        CHECK_OK(mesh_host_mesh_shutdown(inst, hm, 60000)); /* idempotent */
        EXPECT_RC(MESH_ECLOSED, mesh_host_mesh_spawn(inst, hm, "p2", "", 1000, &pm));
        EXPECT(tu_wait_no_descendants(10) == 0, "processes left after the host mesh shutdown");
    }

    /* A host mesh left running, whose owner is freed: mesh_shutdown must
    ** still shut it down (checked at the end: no process left). */
    {
        mesh_instance_t owner;
        mesh_host_mesh_t hm;
        mesh_proc_mesh_t pm;
        CHECK_OK(mesh_instance_create(proc, "owner", &owner));
        CHECK_OK(mesh_host_mesh_allocate(owner, alloc, "hosts=1", "left", 60000, &hm));
        CHECK_OK(mesh_host_mesh_spawn(owner, hm, "p", "", 60000, &pm));
        mesh_handle_free(owner);
        EXPECT_RC(MESH_EBADHANDLE, mesh_host_mesh_spawn(owner, hm, "p2", "", 1000, &pm));
        EXPECT(tu_count_descendants(0) == 2, "want host + proc running, have %d", tu_count_descendants(1));
    }

    /* Fork without exec: every call refuses, nothing hangs. The child
    ** reports through a pipe (its exit status may be a checker's, under
    ** Valgrind) and leaves with _exit. */
    fflush(NULL);
    int fds[2];
    EXPECT(pipe(fds) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        mesh_proc_t p = 0;
        char verdict = 'y';
        if (mesh_proc_create("unix:", "forked", &p) != MESH_EFORKED || mesh_errmsg()[0] == 0) verdict = 'a';
        if (mesh_port_try_recv(port, &msg) != MESH_EFORKED) verdict = 'b';
        if (mesh_bootstrap_main() != 1) verdict = 'c';
        if (mesh_init(NULL) != MESH_EFORKED) verdict = 'd';
        mesh_handle_free(port); /* a no-op here */
        mesh_buf_free(&buf);
        if (write(fds[1], &verdict, 1) != 1) _exit(2);
        _exit(0);
    }
    close(fds[1]);
    char verdict = 0;
    EXPECT(read(fds[0], &verdict, 1) == 1 && verdict == 'y', "the forked child did not get MESH_EFORKED everywhere (%c)",
           verdict ? verdict : '?');
    close(fds[0]);
    int wstatus;
    EXPECT(waitpid(child, &wstatus, 0) == child, "waitpid");
    /* The parent is unaffected. */
    EXPECT_RC(MESH_AGAIN, mesh_port_try_recv(port, &msg));

    /* Calls after mesh_shutdown. */
    mesh_buf_free(&self);
    CHECK_OK(mesh_shutdown(10000));
    CHECK_OK(mesh_shutdown(10000)); /* idempotent */
    EXPECT_RC(MESH_ECLOSED, mesh_port_try_recv(port, &msg));
    EXPECT_RC(MESH_ECLOSED, mesh_proc_create("unix:", "late", &proc));
    EXPECT_RC(MESH_ECLOSED, mesh_init(NULL));
    mesh_handle_free(port); /* harmless */
    EXPECT(tu_wait_no_descendants(10) == 0, "processes left after mesh_shutdown");
    return tu_finish("bad_input");
}
