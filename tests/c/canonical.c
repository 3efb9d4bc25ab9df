/* Monarch's bootstrap_canonical_simple, step by step, through the C ABI.
**
** usage: canonical BOOTSTRAP_BINARY
*/
#include "testutil.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BOOTSTRAP_BINARY\n", argv[0]);
        return 2;
    }
    const char *bootstrap = argv[1];
    /* Unit-test scoped: children inherit it and rely on heartbeats instead
    ** of the parent-death signal. */
    setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false", 1);
    EXPECT(mesh_abi_version() == MESH_ABI_VERSION, "abi %d, header %d", mesh_abi_version(), MESH_ABI_VERSION);
    CHECK_OK(mesh_init(NULL));

    /* 1) Create a "root" direct-addressed proc. */
    mesh_proc_t proc;
    CHECK_OK(mesh_proc_create("unix:", "root", &proc));

    /* 2) Create an actor instance we'll use to send and receive messages. */
    mesh_instance_t instance;
    CHECK_OK(mesh_instance_create(proc, "client", &instance));

    /* 3) Configure a ProcessAllocator with the bootstrap binary. */
    mesh_allocator_t allocator;
    CHECK_OK(mesh_allocator_process(bootstrap, NULL, NULL, &allocator));

    /* 4) Request a new allocation of procs from the allocator, and
    ** 5) build a HostMesh with explicit OS-process boundaries (per rank):
    ** the allocator starts one OS process per rank; each runs the runtime
    ** and a proc whose agent spawns a HostAgent (the trampoline), and the
    ** host agents are collected into the host mesh. The C ABI does both in
    ** one call, which leaves nothing running if either step fails. */
    mesh_host_mesh_t host_mesh;
    CHECK_OK(mesh_host_mesh_allocate(instance, allocator, "replicas=1", "test", 60000, &host_mesh));
    EXPECT(tu_count_descendants(0) == 1, "want 1 host process, have %d", tu_count_descendants(1));

    /* 6) Spawn a ProcMesh named "p0" on the host mesh: each host launches
    ** a brand-new OS process that bootstraps a proc with its ProcAgent. */
    mesh_proc_mesh_t proc_mesh;
    CHECK_OK(mesh_host_mesh_spawn(instance, host_mesh, "p0", "", 60000, &proc_mesh));
    EXPECT(tu_count_descendants(0) == 2, "want host + proc processes, have %d", tu_count_descendants(1));

    /* 7) Spawn an ActorMesh of TestActor named "a0" on the proc mesh: the
    ** ProcAgent of each proc spawns the actor by its type name. */
    mesh_actor_mesh_t actor_mesh;
    CHECK_OK(mesh_actor_mesh_spawn(instance, proc_mesh, "a0", "testactor.TestActor", NULL, 0, 60000, &actor_mesh));
    int32_t size = 0;
    CHECK_OK(mesh_actor_mesh_size(actor_mesh, &size));
    EXPECT(size == 1, "actor mesh size %d, want 1", size);

    /* 8) Open a fresh port on the client instance and cast a GetActorID
    ** message, whose payload (msgpack {"Reply": <port ref>}) is built by
    ** hand around the port's reference. The actor replies with its id;
    ** it must be byte for byte the id the mesh reports for rank 0. */
    mesh_port_t port;
    mesh_buf_t ref;
    CHECK_OK(mesh_port_open(instance, 0, &port, &ref));
    tu_mp msg = {0};
    tu_map(&msg, 1);
    tu_str(&msg, "Reply");
    tu_raw(&msg, ref.data, ref.len);
    CHECK_OK(mesh_cast(instance, actor_mesh, "testactor.GetActorID", msg.b, msg.len));
    tu_free(&msg);

    mesh_msg_t reply;
    CHECK_OK(mesh_port_recv(port, 30000, &reply));
    mesh_buf_t want;
    CHECK_OK(mesh_actor_mesh_actor_id(actor_mesh, 0, &want));
    EXPECT(reply.kind == MESH_MSG_DATA, "reply kind %d", reply.kind);
    EXPECT(reply.type.len > 0 && strcmp((char *)reply.type.data, "actormesh.ActorID") == 0, "reply type %s",
           reply.type.data ? (char *)reply.type.data : "(none)");
    if (!tu_bufeq(&reply.payload, &want)) {
        FAILF("the reply is not the actor's id");
        tu_hex("got ", &reply.payload);
        tu_hex("want", &want);
    }
    /* The sender of the reply is the actor itself. */
    EXPECT(tu_bufeq(&reply.sender, &want), "reply sender is not the actor");
    mesh_msg_free(&reply);
    mesh_msg_free(&reply); /* freeing twice is harmless */
    mesh_buf_free(&want);
    mesh_buf_free(&ref);

    /* 9) Shut down, or we'd leak the OS children the hosts spawned. */
    CHECK_OK(mesh_host_mesh_shutdown(instance, host_mesh, 60000));
    EXPECT(tu_wait_no_descendants(10) == 0, "processes left after the host mesh shutdown");

    mesh_handle_free(port);
    mesh_handle_free(actor_mesh);
    mesh_handle_free(proc_mesh);
    mesh_handle_free(host_mesh);
    mesh_handle_free(allocator);
    mesh_handle_free(instance);
    mesh_handle_free(proc);
    CHECK_OK(mesh_shutdown(10000));
    EXPECT(tu_wait_no_descendants(10) == 0, "processes left after mesh_shutdown");
    return tu_finish("canonical");
}
