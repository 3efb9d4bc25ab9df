/* A C actor type served by this very program acting as the bootstrap
** binary: the client allocates 2 hosts with this program, spawns a 2x2
** proc mesh (each proc is this program again), spawns the C actor on it,
** calls a method and checks the 4 answers computed in C.
**
** usage: foreign_actor          (client; the children re-run it)
*/
#include "testutil.h"

/* ---- the actor type "demo.Adder" ------------------------------------------ */

typedef struct {
    int64_t base;
    long handled;
} adder;

static long created, destroyed;

/* create: params is msgpack int base (or nothing: base 0). */
static int32_t adder_create(void *user, const uint8_t *params, size_t len, void **state) {
    (void)user;
    int64_t base = 0;
    if (len > 0 && tu_read_int(params, len, &base) != 0) return -22; /* refuse malformed params */
    if (base == 666) return -1; /* refused on purpose, for the test */
    adder *a = calloc(1, sizeof *a);
    if (!a) return -12;
    a->base = base;
    *state = a;
    created++;
    return 0;
}

/* Methods:
**   Add(n)   -> base + n + 1000 * rank (rank 0 when sent directly)
**   Whoami() -> the actor's own id
**   Forward(ref) -> sends its rank to the port ref, from the actor
**   Silent() -> returns without replying (the library answers an error)
**   Refuse() -> replies an error
**   Count()  -> number of messages handled before this one
*/
static int32_t adder_handle(void *state, mesh_ctx_t *ctx, const char *method, const uint8_t *payload, size_t len) {
    adder *a = state;
    a->handled++;
    int32_t rank = -1;
    if (mesh_ctx_rank(ctx, &rank) != MESH_OK) return -1;
    tu_mp out = {0};
    int32_t rc = MESH_OK;
    if (strcmp(method, "Add") == 0) {
        int64_t n;
        if (tu_read_int(payload, len, &n) != 0) return mesh_ctx_reply_error(ctx, "Add wants an integer") == MESH_OK ? 0 : -1;
        tu_int(&out, a->base + n + 1000 * (int64_t)(rank < 0 ? 0 : rank)); /* rank -1: sent directly */
        rc = mesh_ctx_reply(ctx, out.b, out.len);
    } else if (strcmp(method, "Whoami") == 0) {
        mesh_buf_t self;
        if (mesh_ctx_self(ctx, &self) != MESH_OK) return -1;
        rc = mesh_ctx_reply(ctx, self.data, self.len);
        mesh_buf_free(&self);
    } else if (strcmp(method, "Forward") == 0) {
        /* payload is a port reference: send our rank there, as this actor. */
        tu_int(&out, rank);
        rc = mesh_ctx_send(ctx, payload, len, "int", out.b, out.len);
        if (rc == MESH_OK) rc = mesh_ctx_reply(ctx, NULL, 0);
    } else if (strcmp(method, "Silent") == 0) {
        return 0;
    } else if (strcmp(method, "Refuse") == 0) {
        rc = mesh_ctx_reply_error(ctx, "refused by the C actor");
    } else if (strcmp(method, "Count") == 0) {
        tu_int(&out, a->handled - 1);
        rc = mesh_ctx_reply(ctx, out.b, out.len);
    } else {
        char text[128];
        snprintf(text, sizeof text, "demo.Adder: unknown method %s", method);
        rc = mesh_ctx_reply_error(ctx, text);
    }
    tu_free(&out);
    /* A second reply is refused. */
    if (rc == MESH_OK && mesh_ctx_reply(ctx, NULL, 0) != MESH_ESTATE) return -2;
    return rc == MESH_OK ? 0 : -3;
}

static void adder_destroy(void *state) {
    free(state);
    destroyed++;
}

static const mesh_actor_vtable_t adder_vtable = {adder_create, adder_handle, adder_destroy};

/* ---- client ------------------------------------------------------------------ */

static void int_payload(tu_mp *m, int64_t v) {
    m->len = 0;
    tu_int(m, v);
}

/* check_adds calls Add(n) on am and checks every rank's answer. */
static void check_adds(mesh_instance_t inst, mesh_actor_mesh_t am, int64_t base, int64_t n, const int *ranks,
                       int nranks) {
    tu_mp p = {0};
    int_payload(&p, n);
    mesh_value_mesh_t vm;
    CHECK_OK(mesh_call(inst, am, "Add", p.b, p.len, 30000, &vm));
    tu_free(&p);
    int32_t size = 0;
    CHECK_OK(mesh_value_mesh_size(vm, &size));
    EXPECT(size == nranks, "value mesh has %d ranks, want %d", size, nranks);
    for (int r = 0; r < size && r < nranks; r++) {
        int32_t status;
        mesh_buf_t out;
        CHECK_OK(mesh_value_mesh_get(vm, r, &status, &out));
        int64_t got = -1;
        if (status != MESH_OK) {
            FAILF("rank %d: %s: %s", r, mesh_status_name(status), out.data ? (char *)out.data : "");
        } else if (tu_read_int(out.data, out.len, &got) != 0) {
            FAILF("rank %d: reply is not an integer", r);
        } else {
            /* The actor computes with its rank in the called view. */
            int64_t want = base + n + 1000 * (int64_t)r;
            EXPECT(got == want, "rank %d (mesh rank %d): got %lld, want %lld", r, ranks[r], (long long)got,
                   (long long)want);
        }
        mesh_buf_free(&out);
    }
    mesh_handle_free(vm);
}

static int client(const char *self) {
    setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false", 1);
    CHECK_OK(mesh_init(NULL));
    mesh_proc_t proc;
    CHECK_OK(mesh_proc_create("unix:", "root", &proc));
    mesh_instance_t inst;
    CHECK_OK(mesh_instance_create(proc, "client", &inst));

    /* The type is spawnable in this process's procs too. */
    {
        mesh_proc_t local;
        CHECK_OK(mesh_proc_create("local:0", "local", &local));
        tu_mp params = {0};
        tu_int(&params, 7);
        mesh_buf_t id;
        CHECK_OK(mesh_proc_spawn(local, "adder", "demo.Adder", params.b, params.len, &id));
        EXPECT(created == 1, "create ran %ld times in this process, want 1", created);
        /* A method call by hand: mesh.MethodCall {Method, Payload, Reply}. */
        mesh_port_t port;
        mesh_buf_t ref;
        CHECK_OK(mesh_port_open(inst, 1, &port, &ref));
        tu_mp arg = {0}, call = {0};
        tu_int(&arg, 5);
        tu_map(&call, 3);
        tu_str(&call, "Method");
        tu_str(&call, "Add");
        tu_str(&call, "Payload");
        tu_bin(&call, arg.b, arg.len);
        tu_str(&call, "Reply");
        tu_raw(&call, ref.data, ref.len);
        CHECK_OK(mesh_send(inst, id.data, id.len, "mesh.MethodCall", call.b, call.len));
        mesh_msg_t m;
        CHECK_OK(mesh_port_recv(port, 10000, &m));
        EXPECT(m.type.len && strcmp((char *)m.type.data, "mesh.MethodReply") == 0, "reply type %s",
               m.type.data ? (char *)m.type.data : "");
        /* MethodReply {Payload: bin(msgpack 12), Err: ""}: find the bin. */
        static const uint8_t want[] = {0xc4, 0x01, 12};
        EXPECT(memmem(m.payload.data, m.payload.len, want, sizeof want) != NULL, "local Add(5) with base 7 is not 12");
        mesh_msg_free(&m);
        /* A once port reads as closed after its message. */
        EXPECT_RC(MESH_ECLOSED, mesh_port_recv(port, 1000, &m));
        mesh_buf_free(&ref);
        mesh_buf_free(&id);
        tu_free(&arg);
        tu_free(&call);
        tu_free(&params);
        mesh_handle_free(port);
        /* A refused create fails the spawn with its code. */
        tu_mp bad = {0};
        tu_int(&bad, 666);
        EXPECT_RC(MESH_EINTERNAL, mesh_proc_spawn(local, "bad", "demo.Adder", bad.b, bad.len, NULL));
        tu_free(&bad);
        mesh_handle_free(local); /* shuts the proc down: the actor's destroy runs */
    }

    /* This program is the bootstrap binary of hosts and procs alike. */
    mesh_allocator_t alloc;
    CHECK_OK(mesh_allocator_process(self, NULL, NULL, &alloc));
    mesh_host_mesh_t hm;
    CHECK_OK(mesh_host_mesh_allocate(inst, alloc, "hosts=2", "hosts", 60000, &hm));
    mesh_proc_mesh_t pm;
    CHECK_OK(mesh_host_mesh_spawn(inst, hm, "procs", "gpus=2", 60000, &pm));
    EXPECT(tu_count_descendants(0) == 6, "want 2 hosts + 4 procs, have %d processes", tu_count_descendants(1));
    mesh_buf_t ext;
    CHECK_OK(mesh_extent(pm, &ext));
    EXPECT(strcmp((char *)ext.data, "{hosts: 2, gpus: 2}") == 0, "proc mesh extent %s", (char *)ext.data);
    mesh_buf_free(&ext);

    tu_mp params = {0};
    tu_int(&params, 40);
    mesh_actor_mesh_t am;
    CHECK_OK(mesh_actor_mesh_spawn(inst, pm, "adders", "demo.Adder", params.b, params.len, 60000, &am));
    tu_free(&params);

    /* Supervise the mesh before anything can fail. */
    mesh_port_t sup;
    CHECK_OK(mesh_port_open(inst, 0, &sup, NULL));
    CHECK_OK(mesh_supervise(inst, am, sup));

    /* 4 answers computed in C, each with the actor's rank. */
    int all[] = {0, 1, 2, 3};
    check_adds(inst, am, 40, 2, all, 4);

    /* Whoami answers the id the mesh reports for each rank. */
    mesh_value_mesh_t vm;
    CHECK_OK(mesh_call(inst, am, "Whoami", NULL, 0, 30000, &vm));
    for (int r = 0; r < 4; r++) {
        int32_t status;
        mesh_buf_t got, want;
        CHECK_OK(mesh_value_mesh_get(vm, r, &status, &got));
        CHECK_OK(mesh_actor_mesh_actor_id(am, r, &want));
        EXPECT(status == MESH_OK && tu_bufeq(&got, &want), "rank %d: Whoami is not the mesh's actor id", r);
        mesh_buf_free(&got);
        mesh_buf_free(&want);
    }
    mesh_handle_free(vm);

    /* A slice: hosts=1 holds mesh ranks 2 and 3, which are ranks 0 and 1 of the slice. */
    mesh_actor_mesh_t second;
    CHECK_OK(mesh_actor_mesh_slice(am, "hosts", 1, 2, &second));
    int32_t n;
    CHECK_OK(mesh_actor_mesh_size(second, &n));
    EXPECT(n == 2, "slice size %d", n);
    int sliced[] = {2, 3};
    check_adds(inst, second, 40, 10, sliced, 2);
    mesh_handle_free(second);

    /* Callbacks send as their actor: each rank sends its rank to a port. */
    {
        mesh_port_t port;
        mesh_buf_t ref;
        CHECK_OK(mesh_port_open(inst, 0, &port, &ref));
        CHECK_OK(mesh_call(inst, am, "Forward", ref.data, ref.len, 30000, &vm));
        int seen = 0;
        for (int i = 0; i < 4; i++) {
            mesh_msg_t m;
            CHECK_OK(mesh_port_recv(port, 30000, &m));
            int64_t r = -1;
            EXPECT(tu_read_int(m.payload.data, m.payload.len, &r) == 0 && r >= 0 && r < 4, "forwarded rank");
            if (r >= 0 && r < 4) {
                mesh_buf_t id;
                CHECK_OK(mesh_actor_mesh_actor_id(am, (int32_t)r, &id));
                EXPECT(tu_bufeq(&m.sender, &id), "rank %lld's message is not from its actor", (long long)r);
                mesh_buf_free(&id);
                seen |= 1 << r;
            }
            mesh_msg_free(&m);
        }
        EXPECT(seen == 0xf, "forwarded ranks: mask %x", seen);
        mesh_handle_free(vm);
        mesh_buf_free(&ref);
        mesh_handle_free(port);
    }

    /* Errors from C callbacks: an explicit error, and no reply at all. */
    CHECK_OK(mesh_call(inst, am, "Refuse", NULL, 0, 30000, &vm));
    for (int r = 0; r < 4; r++) {
        int32_t status;
        mesh_buf_t text;
        CHECK_OK(mesh_value_mesh_get(vm, r, &status, &text));
        EXPECT(status == MESH_EREMOTE && text.len && strstr((char *)text.data, "refused by the C actor"),
               "rank %d: Refuse gave %s %s", r, mesh_status_name(status), text.data ? (char *)text.data : "");
        mesh_buf_free(&text);
    }
    mesh_handle_free(vm);
    CHECK_OK(mesh_call(inst, am, "Silent", NULL, 0, 30000, &vm));
    for (int r = 0; r < 4; r++) {
        int32_t status;
        mesh_buf_t text;
        CHECK_OK(mesh_value_mesh_get(vm, r, &status, &text));
        EXPECT(status == MESH_EREMOTE && text.len && strstr((char *)text.data, "without replying"),
               "rank %d: Silent gave %s %s", r, mesh_status_name(status), text.data ? (char *)text.data : "");
        mesh_buf_free(&text);
    }
    mesh_handle_free(vm);

    /* One actor per proc handled every call so far, in order. */
    CHECK_OK(mesh_call(inst, am, "Count", NULL, 0, 30000, &vm));
    for (int r = 0; r < 4; r++) {
        int32_t status;
        mesh_buf_t out;
        int64_t count = -1;
        CHECK_OK(mesh_value_mesh_get(vm, r, &status, &out));
        EXPECT(status == MESH_OK && tu_read_int(out.data, out.len, &count) == 0, "rank %d: Count failed", r);
        int64_t want = r >= 2 ? 6 : 5; /* Add, Whoami, (Add on the slice), Forward, Refuse, Silent */
        EXPECT(count == want, "rank %d handled %lld messages, want %lld", r, (long long)count, (long long)want);
        mesh_buf_free(&out);
    }
    mesh_handle_free(vm);

    /* No failure happened. */
    mesh_msg_t ev;
    EXPECT_RC(MESH_AGAIN, mesh_port_try_recv(sup, &ev));

    CHECK_OK(mesh_actor_mesh_stop(inst, am, 30000));
    EXPECT_RC(MESH_ECLOSED, mesh_call(inst, am, "Add", NULL, 0, 1000, &vm));
    CHECK_OK(mesh_host_mesh_shutdown(inst, hm, 60000));
    EXPECT(tu_wait_no_descendants(10) == 0, "processes left after the host mesh shutdown");
    CHECK_OK(mesh_shutdown(10000));
    EXPECT(destroyed == 1, "destroy ran %ld times in this process, want 1", destroyed);
    EXPECT(tu_wait_no_descendants(10) == 0, "processes left after mesh_shutdown");
    return tu_finish("foreign_actor");
}

int main(int argc, char **argv) {
    (void)argc;
    /* Registered in every role: the children spawn it, the client spawns it
    ** in its own procs. */
    CHECK_OK(mesh_register_actor_type("demo.Adder", &adder_vtable, NULL));
    if (mesh_bootstrap_requested() == 1) return mesh_bootstrap_main();
    return client(argv[0]);
}
