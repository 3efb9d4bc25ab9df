// The public entry points of libmesh.so. Each is a thin C function that
// clears the calling thread's error text and refuses to enter the Go
// runtime in a child forked without exec (Go cannot run there: only the
// forking thread survives, so the first call would deadlock), then calls
// the Go implementation (meshgo_*, in the .go files of this package).
//
// Also here: the thread-local error text, and the trampolines through which
// Go calls the function pointers of foreign actor vtables.

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "shim.h"
#include "_cgo_export.h"

#define HIDDEN __attribute__((visibility("hidden")))

// ---- error text -----------------------------------------------------------

static _Thread_local char meshc_errbuf[MESHC_ERRMAX];

HIDDEN void meshc_set_err(const char *p, size_t n) {
    if (n >= MESHC_ERRMAX) {
        static const char cut[] = " [...]";
        size_t keep = MESHC_ERRMAX - sizeof cut;
        memcpy(meshc_errbuf, p, keep);
        memcpy(meshc_errbuf + keep, cut, sizeof cut);
        return;
    }
    memcpy(meshc_errbuf, p, n);
    meshc_errbuf[n] = 0;
}

const char *mesh_errmsg(void) { return meshc_errbuf; }

// ---- fork detection -------------------------------------------------------

static volatile int meshc_forked;
static pid_t meshc_pid;

static void meshc_atfork_child(void) { meshc_forked = 1; }

__attribute__((constructor)) static void meshc_load(void) {
    meshc_pid = getpid();
    pthread_atfork(NULL, NULL, meshc_atfork_child);
}

static int meshc_in_forked_child(void) {
    static const char msg[] =
        "libmesh: called in a process forked without exec; the runtime cannot run here "
        "(use fork+exec, posix_spawn, or multiprocessing's spawn/forkserver start methods)";
    // The atfork flag covers fork(); the pid check covers raw clone().
    if (__builtin_expect(meshc_forked, 0) || __builtin_expect(getpid() != meshc_pid, 0)) {
        meshc_forked = 1;
        meshc_set_err(msg, sizeof msg - 1);
        return 1;
    }
    return 0;
}

// ENTER starts every function that may enter Go.
#define ENTER(ret)                          \
    do {                                    \
        meshc_errbuf[0] = 0;                \
        if (meshc_in_forked_child()) return (ret); \
    } while (0)

// ---- foreign actor trampolines ------------------------------------------------

HIDDEN int32_t meshc_call_create(uintptr_t fn, uintptr_t user, const uint8_t *params, size_t len,
                                 uintptr_t *state) {
    int32_t (*f)(void *, const uint8_t *, size_t, void **) = (int32_t(*)(void *, const uint8_t *, size_t, void **))fn;
    void *s = NULL;
    int32_t rc = f((void *)user, params, len, &s);
    *state = (uintptr_t)s;
    return rc;
}

HIDDEN int32_t meshc_call_handle(uintptr_t fn, uintptr_t state, uint64_t ctx, const char *method,
                                 const uint8_t *payload, size_t len) {
    int32_t (*f)(void *, mesh_ctx_t *, const char *, const uint8_t *, size_t) =
        (int32_t(*)(void *, mesh_ctx_t *, const char *, const uint8_t *, size_t))fn;
    // The ctx is an id, never dereferenced: a stale one is an error, not a crash.
    return f((void *)state, (mesh_ctx_t *)(uintptr_t)ctx, method, payload, len);
}

HIDDEN void meshc_call_destroy(uintptr_t fn, uintptr_t state) {
    void (*f)(void *) = (void (*)(void *))fn;
    f((void *)state);
}

HIDDEN void *meshc_malloc(size_t n) { return malloc(n ? n : 1); }

// ---- library ------------------------------------------------------------------

int32_t mesh_abi_version(void) { return MESH_ABI_VERSION; }

const char *mesh_status_name(int32_t status) {
    switch (status) {
    case MESH_OK: return "MESH_OK";
    case MESH_AGAIN: return "MESH_AGAIN";
    case MESH_TIMEOUT: return "MESH_TIMEOUT";
    case MESH_EINVAL: return "MESH_EINVAL";
    case MESH_EBADHANDLE: return "MESH_EBADHANDLE";
    case MESH_ENOTFOUND: return "MESH_ENOTFOUND";
    case MESH_ECLOSED: return "MESH_ECLOSED";
    case MESH_ETOOBIG: return "MESH_ETOOBIG";
    case MESH_ESUPERVISION: return "MESH_ESUPERVISION";
    case MESH_EFORKED: return "MESH_EFORKED";
    case MESH_EPANIC: return "MESH_EPANIC";
    case MESH_EINTERNAL: return "MESH_EINTERNAL";
    case MESH_ESTATE: return "MESH_ESTATE";
    case MESH_EREMOTE: return "MESH_EREMOTE";
    }
    return "MESH_UNKNOWN";
}

void mesh_buf_free(mesh_buf_t *buf) {
    if (buf == NULL) return;
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
}

void mesh_msg_free(mesh_msg_t *msg) {
    if (msg == NULL) return;
    mesh_buf_free(&msg->type);
    mesh_buf_free(&msg->payload);
    mesh_buf_free(&msg->sender);
    mesh_buf_free(&msg->text);
    msg->kind = 0;
    msg->rank = 0;
}

int32_t mesh_init(const char *config_json) {
    ENTER(MESH_EFORKED);
    return meshgo_init((char *)config_json);
}

int32_t mesh_shutdown(int64_t timeout_ms) {
    ENTER(MESH_EFORKED);
    return meshgo_shutdown(timeout_ms);
}

void mesh_handle_free(uint64_t handle) {
    meshc_errbuf[0] = 0;
    if (handle == 0 || meshc_in_forked_child()) return;
    meshgo_handle_free(handle);
}

// ---- procs and instances ------------------------------------------------------

int32_t mesh_proc_create(const char *addr, const char *name, mesh_proc_t *proc) {
    ENTER(MESH_EFORKED);
    return meshgo_proc_create((char *)addr, (char *)name, proc);
}

int32_t mesh_proc_id(mesh_proc_t proc, mesh_buf_t *id) {
    ENTER(MESH_EFORKED);
    return meshgo_proc_id(proc, id);
}

int32_t mesh_proc_spawn(mesh_proc_t proc, const char *name, const char *type_name, const uint8_t *params,
                        size_t params_len, mesh_buf_t *actor_id) {
    ENTER(MESH_EFORKED);
    return meshgo_proc_spawn(proc, (char *)name, (char *)type_name, (uint8_t *)params, params_len, actor_id);
}

int32_t mesh_instance_create(mesh_proc_t proc, const char *name, mesh_instance_t *inst) {
    ENTER(MESH_EFORKED);
    return meshgo_instance_create(proc, (char *)name, inst);
}

int32_t mesh_instance_id(mesh_instance_t inst, mesh_buf_t *id) {
    ENTER(MESH_EFORKED);
    return meshgo_instance_id(inst, id);
}

// ---- ports and pollers -------------------------------------------------------

int32_t mesh_port_open(mesh_instance_t inst, int32_t once, mesh_port_t *port, mesh_buf_t *ref) {
    ENTER(MESH_EFORKED);
    return meshgo_port_open(inst, once, port, ref);
}

static int64_t meshc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// A blocking receive waits inside Go (meshgo_port_wait): it spins for a
// short while, since a reply from a nearby process often comes sooner than
// a sleeping thread wakes, then sleeps. Each call sleeps at most
// MESHC_WAIT_SLICE_MS, so that the deadline and a shutdown are noticed.
#define MESHC_WAIT_SLICE_MS 250
int32_t mesh_port_recv(mesh_port_t port, int64_t timeout_ms, mesh_msg_t *msg) {
    ENTER(MESH_EFORKED);
    if (timeout_ms == 0 || timeout_ms < -1) return meshgo_port_recv(port, timeout_ms, msg);
    int64_t deadline = timeout_ms > 0 ? meshc_now_ms() + timeout_ms : 0;
    for (;;) {
        int slice = MESHC_WAIT_SLICE_MS;
        if (timeout_ms > 0) {
            int64_t left = deadline - meshc_now_ms();
            if (left <= 0) {
                char text[96];
                int n = snprintf(text, sizeof text, "libmesh: nothing received within %lld ms", (long long)timeout_ms);
                meshc_set_err(text, (size_t)n);
                return MESH_TIMEOUT;
            }
            if (left < slice) slice = (int)left;
        }
        meshc_errbuf[0] = 0;
        int32_t rc = meshgo_port_wait(port, msg, slice);
        if (rc != MESH_AGAIN) return rc;
    }
}

int32_t mesh_port_try_recv(mesh_port_t port, mesh_msg_t *msg) {
    ENTER(MESH_EFORKED);
    return meshgo_port_recv(port, 0, msg);
}

int32_t mesh_port_close(mesh_port_t port) {
    ENTER(MESH_EFORKED);
    return meshgo_port_close(port);
}

int32_t mesh_poller_create(int *fd, mesh_poller_t *poller) {
    ENTER(MESH_EFORKED);
    return meshgo_poller_create(fd, poller);
}

int32_t mesh_poller_add(mesh_poller_t poller, uint64_t source, uint64_t tag) {
    ENTER(MESH_EFORKED);
    return meshgo_poller_add(poller, source, tag);
}

int32_t mesh_poller_remove(mesh_poller_t poller, uint64_t source) {
    ENTER(MESH_EFORKED);
    return meshgo_poller_remove(poller, source);
}

int32_t mesh_poller_next(mesh_poller_t poller, uint64_t *tag, mesh_msg_t *msg) {
    ENTER(MESH_EFORKED);
    return meshgo_poller_next(poller, tag, msg);
}

// ---- sending -----------------------------------------------------------------

int32_t mesh_send(mesh_instance_t inst, const uint8_t *ref, size_t ref_len, const char *type_name,
                  const uint8_t *payload, size_t payload_len) {
    ENTER(MESH_EFORKED);
    return meshgo_send(inst, (uint8_t *)ref, ref_len, (char *)type_name, (uint8_t *)payload, payload_len);
}

int32_t mesh_next_undeliverable(mesh_instance_t inst, int64_t timeout_ms, mesh_msg_t *msg) {
    ENTER(MESH_EFORKED);
    return meshgo_next_undeliverable(inst, timeout_ms, msg);
}

// ---- allocation and meshes ---------------------------------------------------

int32_t mesh_allocator_process(const char *program, const char *const *args, const char *const *env,
                               mesh_allocator_t *alloc) {
    ENTER(MESH_EFORKED);
    return meshgo_allocator_process((char *)program, (char **)args, (char **)env, alloc);
}

int32_t mesh_host_mesh_allocate(mesh_instance_t inst, mesh_allocator_t alloc, const char *extent, const char *name,
                                int64_t timeout_ms, mesh_host_mesh_t *hm) {
    ENTER(MESH_EFORKED);
    return meshgo_host_mesh_allocate(inst, alloc, (char *)extent, (char *)name, timeout_ms, hm);
}

int32_t mesh_host_mesh_spawn(mesh_instance_t inst, mesh_host_mesh_t hm, const char *name, const char *per_host,
                             int64_t timeout_ms, mesh_proc_mesh_t *pm) {
    ENTER(MESH_EFORKED);
    return meshgo_host_mesh_spawn(inst, hm, (char *)name, (char *)per_host, timeout_ms, pm);
}

int32_t mesh_host_mesh_stop(mesh_instance_t inst, mesh_host_mesh_t hm, int64_t timeout_ms) {
    ENTER(MESH_EFORKED);
    return meshgo_host_mesh_stop(inst, hm, timeout_ms);
}

int32_t mesh_host_mesh_shutdown(mesh_instance_t inst, mesh_host_mesh_t hm, int64_t timeout_ms) {
    ENTER(MESH_EFORKED);
    return meshgo_host_mesh_shutdown(inst, hm, timeout_ms);
}

int32_t mesh_proc_mesh_stop(mesh_instance_t inst, mesh_proc_mesh_t pm, int64_t timeout_ms) {
    ENTER(MESH_EFORKED);
    return meshgo_proc_mesh_stop(inst, pm, timeout_ms);
}

int32_t mesh_actor_mesh_spawn(mesh_instance_t inst, mesh_proc_mesh_t pm, const char *name, const char *type_name,
                              const uint8_t *params, size_t params_len, int64_t timeout_ms, mesh_actor_mesh_t *am) {
    ENTER(MESH_EFORKED);
    return meshgo_actor_mesh_spawn(inst, pm, (char *)name, (char *)type_name, (uint8_t *)params, params_len,
                                   timeout_ms, am);
}

int32_t mesh_actor_mesh_size(mesh_actor_mesh_t am, int32_t *size) {
    ENTER(MESH_EFORKED);
    return meshgo_actor_mesh_size(am, size);
}

int32_t mesh_actor_mesh_actor_id(mesh_actor_mesh_t am, int32_t rank, mesh_buf_t *id) {
    ENTER(MESH_EFORKED);
    return meshgo_actor_mesh_actor_id(am, rank, id);
}

int32_t mesh_actor_mesh_slice(mesh_actor_mesh_t am, const char *dim, int32_t from, int32_t to,
                              mesh_actor_mesh_t *out) {
    ENTER(MESH_EFORKED);
    return meshgo_actor_mesh_slice(am, (char *)dim, from, to, out);
}

int32_t mesh_actor_mesh_stop(mesh_instance_t inst, mesh_actor_mesh_t am, int64_t timeout_ms) {
    ENTER(MESH_EFORKED);
    return meshgo_actor_mesh_stop(inst, am, timeout_ms);
}

int32_t mesh_extent(uint64_t mesh, mesh_buf_t *extent) {
    ENTER(MESH_EFORKED);
    return meshgo_extent(mesh, extent);
}

int32_t mesh_cast(mesh_instance_t inst, mesh_actor_mesh_t am, const char *type_name, const uint8_t *payload,
                  size_t payload_len) {
    ENTER(MESH_EFORKED);
    return meshgo_cast(inst, am, (char *)type_name, (uint8_t *)payload, payload_len);
}

int32_t mesh_call(mesh_instance_t inst, mesh_actor_mesh_t am, const char *method, const uint8_t *payload,
                  size_t payload_len, int64_t timeout_ms, mesh_value_mesh_t *vm) {
    ENTER(MESH_EFORKED);
    return meshgo_call(inst, am, (char *)method, (uint8_t *)payload, payload_len, timeout_ms, vm);
}

int32_t mesh_value_mesh_size(mesh_value_mesh_t vm, int32_t *size) {
    ENTER(MESH_EFORKED);
    return meshgo_value_mesh_size(vm, size);
}

int32_t mesh_value_mesh_get(mesh_value_mesh_t vm, int32_t rank, int32_t *status, mesh_buf_t *out) {
    ENTER(MESH_EFORKED);
    return meshgo_value_mesh_get(vm, rank, status, out);
}

int32_t mesh_supervise(mesh_instance_t inst, mesh_actor_mesh_t am, mesh_port_t port) {
    ENTER(MESH_EFORKED);
    return meshgo_supervise(inst, am, port);
}

// ---- foreign actors ----------------------------------------------------------

int32_t mesh_register_actor_type(const char *name, const mesh_actor_vtable_t *vt, void *user) {
    ENTER(MESH_EFORKED);
    if (vt == NULL) return meshgo_register_actor_type((char *)name, 0, 0, 0, (uintptr_t)user, 0);
    return meshgo_register_actor_type((char *)name, (uintptr_t)vt->create, (uintptr_t)vt->handle,
                                      (uintptr_t)vt->destroy, (uintptr_t)user, 1);
}

int32_t mesh_ctx_reply(mesh_ctx_t *ctx, const uint8_t *payload, size_t len) {
    ENTER(MESH_EFORKED);
    return meshgo_ctx_reply((uintptr_t)ctx, (uint8_t *)payload, len, NULL, 0);
}

int32_t mesh_ctx_reply_error(mesh_ctx_t *ctx, const char *msg) {
    ENTER(MESH_EFORKED);
    return meshgo_ctx_reply((uintptr_t)ctx, NULL, 0, (char *)msg, 1);
}

int32_t mesh_ctx_rank(mesh_ctx_t *ctx, int32_t *rank) {
    ENTER(MESH_EFORKED);
    return meshgo_ctx_rank((uintptr_t)ctx, rank);
}

int32_t mesh_ctx_self(mesh_ctx_t *ctx, mesh_buf_t *id) {
    ENTER(MESH_EFORKED);
    return meshgo_ctx_self((uintptr_t)ctx, id);
}

int32_t mesh_ctx_send(mesh_ctx_t *ctx, const uint8_t *ref, size_t ref_len, const char *type_name,
                      const uint8_t *payload, size_t payload_len) {
    ENTER(MESH_EFORKED);
    return meshgo_ctx_send((uintptr_t)ctx, (uint8_t *)ref, ref_len, (char *)type_name, (uint8_t *)payload,
                           payload_len);
}

// ---- bootstrap ---------------------------------------------------------------

int32_t mesh_bootstrap_requested(void) {
    ENTER(MESH_EFORKED);
    return meshgo_bootstrap_requested();
}

int32_t mesh_bootstrap_main(void) {
    ENTER(1);
    return meshgo_bootstrap_main();
}
