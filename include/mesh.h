/*
** mesh.h: the C ABI of actormesh (libmesh.so).
**
** This header is the contract. Bindings for other languages (Python
** ctypes, ...) are written against it and nothing else. Every function is
** documented below with its ownership rules; the conventions that hold for
** all of them come first.
**
** ^Constants (status codes, message kinds, MESH_ABI_VERSION) never change
** meaning and are never reused. A function whose behaviour must change gets
** a new name (mesh_x_v2); the old one keeps its behaviour.
**
** CONVENTIONS
**
**   Status codes. ^Every fallible function returns an int32_t status:
**   MESH_OK (0) on success, a positive informational code (MESH_AGAIN,
**   MESH_TIMEOUT) when nothing went wrong but there is no result, or a
**   negative error code. ^Results are written only through out-parameters
**   (marked OUT below). ^After an error the out-parameters are zeroed when
**   they are non-NULL (handles become 0, buffers {NULL, 0}, messages all
**   zero), so freeing them is always harmless.
**
**   Error text. ^mesh_errmsg() returns the calling thread's text for the
**   last status the calling thread got from the library: "" after
**   MESH_OK, a one-line (sometimes multi-line) human-readable cause after
**   anything else. ^It is never NULL and stays valid until the calling
**   thread's next mesh_* call.
**
**   Handles. ^Objects are named by uint64_t handles of one typedef per
**   kind. ^0 is never a valid handle. ^A handle that was freed, that never
**   existed, or that names an object of another kind gives MESH_EBADHANDLE;
**   it never crashes. ^mesh_handle_free() drops the library's object for a
**   handle (see there for what that stops).
**
**   Memory. ^Inputs (strings, byte ranges, arrays) are borrowed for the
**   duration of the call: the library copies what it keeps, so the caller
**   may free or reuse them as soon as the call returns. ^Outputs are
**   allocated by the library with malloc() and belong to the caller from
**   then on: a mesh_buf_t is released with mesh_buf_free(), a mesh_msg_t
**   with mesh_msg_free(). ^Those two are the only functions that free
**   library output; the library never frees caller memory. ^When a
**   mesh_buf_t's len is non-zero, data[len] is a NUL byte (not counted in
**   len), so text outputs can be used as C strings; when len is 0, data
**   may be NULL.
**
**   Payloads. ^Message bodies, actor parameters, method payloads and replies
**   are msgpack bytes, each exactly one msgpack value. ^Ids (ports, actors)
**   are msgpack too: a port reference is [addr, proc, actor, pid, index], an
**   actor id [addr, proc, actor, pid] (strings and unsigned integers); both
**   are produced by the library and can be embedded as-is inside a payload
**   (for example as the "Reply" field of a request).
**
**   Extents are small strings: "hosts=2,gpus=8" (or the printed form
**   "{hosts: 2, gpus: 8}"); "" or NULL is the unity extent (one rank, no
**   dimensions). Labels are identifiers; sizes are at least 1.
**
**   Names (of procs, instances, meshes) are a letter or '_' followed by
**   letters, digits, '_', '-' or '.'; at most 255 bytes.
**
**   Timeouts. ^Blocking functions take int64_t timeout_ms: -1 waits without
**   a time limit, 0 does not wait, a positive value waits at most that many
**   milliseconds; any other negative value is MESH_EINVAL. ^A wait never
**   holds an internal lock, and mesh_shutdown() ends every wait (with
**   MESH_ECLOSED or the operation's own error).
**
**   Threads. ^Every function may be called from any thread, concurrently,
**   except that one port or one poller has one receiver at a time (see
**   mesh_port_recv and mesh_poller_next). ^Callbacks of foreign actors run
**   on a library-owned thread, one per actor (see mesh_register_actor_type).
**
**   Initialisation. ^mesh_init() must succeed before any other function
**   except mesh_abi_version, mesh_errmsg, mesh_status_name, mesh_buf_free,
**   mesh_msg_free, mesh_handle_free, mesh_register_actor_type,
**   mesh_bootstrap_requested and mesh_bootstrap_main; those return
**   MESH_ESTATE otherwise. ^After mesh_shutdown() they return MESH_ECLOSED.
**
**   Fork. ^Go cannot run in a child forked without exec. ^In such a child
**   every function returns MESH_EFORKED (void functions do nothing, and
**   mesh_bootstrap_main returns 1) without entering the runtime; only
**   mesh_errmsg, mesh_status_name, mesh_abi_version, mesh_buf_free and
**   mesh_msg_free work. Fork+exec (posix_spawn, subprocess) is fine.
**
**   Signals. ^The library installs no handler for SIGINT, SIGTERM or any
**   signal that drives a program's lifecycle. (The Go runtime handles
**   synchronous signals and SIGPIPE itself; handlers installed by the host
**   after the library is loaded must use SA_ONSTACK.) ^The library never
**   calls exit().
**
**   One runtime. ^Load exactly one libmesh.so per process and never
**   dlclose() it; it cannot share a process with another Go-built shared
**   library. ^Go programs use the Go SDK, not this library. (Loading it
**   into a Go program starts a second Go runtime, which Go does not
**   support; on linux/amd64 it works when the library is preloaded with
**   LD_PRELOAD, as tests/capi_purego_test.go does. The library's runtime
**   uses initial-exec TLS: a late dlopen() can fail with "cannot allocate
**   memory in static TLS block" in a process with little static TLS left;
**   preloading or linking the library avoids it.)
*/
#ifndef MESH_H
#define MESH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version of this header; mesh_abi_version() returns the library's. */
#define MESH_ABI_VERSION 1

/* ---------------------------------------------------------------------
** Status codes (int32_t). Never renumbered, never reused.
*/
#define MESH_OK            0   /* success */
#define MESH_AGAIN         1   /* nothing available now (non-blocking calls) */
#define MESH_TIMEOUT       2   /* the timeout passed before a result came */
#define MESH_EINVAL       -1   /* a bad argument: NULL pointer, malformed text or msgpack, out of range */
#define MESH_EBADHANDLE   -2   /* a handle that is 0, freed, forged, or of the wrong kind */
#define MESH_ENOTFOUND    -3   /* a name that is not known: actor type, dimension */
#define MESH_ECLOSED      -4   /* the port, instance or proc is closed, or the library was shut down */
#define MESH_ETOOBIG      -5   /* a payload above the maximum message size; nothing was sent */
#define MESH_ESUPERVISION -6   /* the mesh has failed ranks (mesh_errmsg names them and why) */
#define MESH_EFORKED      -7   /* called in a child forked without exec */
#define MESH_EPANIC       -8   /* an internal panic was caught; mesh_errmsg has the stack */
#define MESH_EINTERNAL    -9   /* any other failure (I/O, a remote proc that could not start, ...) */
#define MESH_ESTATE      -10   /* not valid now: before mesh_init, ctx outside its callback, reply twice */
#define MESH_EREMOTE     -11   /* a remote actor answered with an error (value meshes) */

/* ---------------------------------------------------------------------
** Handles. 0 is never valid.
*/
typedef uint64_t mesh_proc_t;        /* an in-process proc at a channel address */
typedef uint64_t mesh_instance_t;    /* a client instance: an actor identity with ports, no loop */
typedef uint64_t mesh_port_t;        /* the receiving side of a port */
typedef uint64_t mesh_poller_t;      /* a set of ports with one pollable fd */
typedef uint64_t mesh_allocator_t;   /* a process allocator */
typedef uint64_t mesh_host_mesh_t;   /* hosts laid out on an extent */
typedef uint64_t mesh_proc_mesh_t;   /* procs (OS processes) on the hosts */
typedef uint64_t mesh_actor_mesh_t;  /* one actor per proc of a proc mesh, or a slice of such */
typedef uint64_t mesh_value_mesh_t;  /* one result per rank of a call */

/* ---------------------------------------------------------------------
** Buffers and messages (library output; see Memory above).
*/
typedef struct mesh_buf {
    uint8_t *data;  /* malloc'd by the library; NULL when len is 0 */
    size_t len;     /* bytes, not counting the NUL at data[len] */
} mesh_buf_t;

/* Message kinds (mesh_msg_t.kind). */
#define MESH_MSG_DATA          1  /* a message sent to a port */
#define MESH_MSG_SUPERVISION   2  /* a failure of a supervised mesh (mesh_supervise) */
#define MESH_MSG_UNDELIVERABLE 3  /* a message this instance sent that could not be delivered */
#define MESH_MSG_CLOSED        4  /* poller only: the source closed and left the poller */

typedef struct mesh_msg {
    int32_t kind;        /* MESH_MSG_* */
    int32_t rank;        /* SUPERVISION: the first failed rank of the mesh; otherwise -1 */
    mesh_buf_t type;     /* the registered type name of the body ("" if untyped):
                            DATA: as sent; SUPERVISION: "mesh.MeshFailure";
                            UNDELIVERABLE: the type of the message that came back */
    mesh_buf_t payload;  /* msgpack body: DATA: the message; SUPERVISION: the
                            mesh.MeshFailure {Mesh, Ranks, Cause, ...};
                            UNDELIVERABLE: the original body */
    mesh_buf_t sender;   /* msgpack id: DATA: the sending actor's id;
                            SUPERVISION: the id of the instance that subscribed;
                            UNDELIVERABLE: the port id of the destination that
                            could not be reached */
    mesh_buf_t text;     /* readable text, no msgpack needed: SUPERVISION: the
                            failure and its cause; UNDELIVERABLE: why;
                            CLOSED: why the source closed; DATA: empty */
} mesh_msg_t;

/* ---------------------------------------------------------------------
** Library
*/

/*
** ABI version. METHOD.
** ^Returns the ABI version the library implements; a binding checks that it
** equals the MESH_ABI_VERSION it was written against. Never fails.
*/
int32_t mesh_abi_version(void);

/*
** Initialise the library. CONSTRUCTOR (process-wide).
** ^config_json is NULL or a JSON object with any of:
**   "max_message_size": bytes, the largest payload a send, cast or call
**       accepts (default and ceiling: 1 GiB minus 64 KiB);
**   "log_level": "debug", "info", "warn" (default) or "error": the
**       runtime's diagnostics on stderr.
** ^Unknown keys or malformed JSON give MESH_EINVAL. ^A second call while
** initialised is MESH_OK and changes nothing. ^After mesh_shutdown(),
** MESH_ECLOSED: the library cannot be initialised again in this process.
*/
int32_t mesh_init(const char *config_json);

/*
** Shut the library down. DESTRUCTOR (process-wide).
** ^Ends every blocking call in progress, shuts down every host mesh not yet
** shut down (their hosts and procs exit), shuts down every proc created with
** mesh_proc_create, closes every port and poller fd, and frees every
** handle. ^Waits at most timeout_ms (-1: a few internal limits, each
** bounded) and returns MESH_TIMEOUT if something had to be abandoned
** (mesh_errmsg says what). ^Later calls get MESH_ECLOSED. ^Idempotent: a
** second call returns MESH_OK. Meant for atexit, with a short timeout.
*/
int32_t mesh_shutdown(int64_t timeout_ms);

/*
** Last error text of the calling thread. METHOD.
** ^Never NULL; "" after success. ^Owned by the library and valid until the
** calling thread's next mesh_* call. Texts longer than 8 KiB are cut.
*/
const char *mesh_errmsg(void);

/*
** Name of a status code. METHOD.
** ^Returns a static string such as "MESH_EINVAL", or "MESH_UNKNOWN" for a
** value that is not a status code. Never NULL; never free it.
*/
const char *mesh_status_name(int32_t status);

/*
** Free a buffer. DESTRUCTOR.
** ^Frees buf->data and sets buf to {NULL, 0}, so a second call is
** harmless. ^buf == NULL is a no-op. Works in a forked child.
*/
void mesh_buf_free(mesh_buf_t *buf);

/*
** Free a message. DESTRUCTOR.
** ^Frees every buffer of msg and zeroes it; msg == NULL is a no-op; a
** second call is harmless. Works in a forked child.
*/
void mesh_msg_free(mesh_msg_t *msg);

/*
** Free a handle. DESTRUCTOR.
** ^Drops the library's object for handle; the handle is invalid afterwards
** (MESH_EBADHANDLE). ^Never blocks and never fails: 0, a stale handle or a
** second free is a no-op. What it releases, by kind:
**   proc: shuts the proc down in the background (its actors stop);
**   instance: stops the instance (its ports close);
**   port: closes the port (as mesh_port_close) and leaves any poller;
**   poller: closes its fd (the caller must not close it) and lets go of
**       its ports, which stay open;
**   allocator, value mesh, actor mesh, proc mesh: only the local object;
**   host mesh: only the handle: the hosts keep running until
**       mesh_host_mesh_shutdown was called or mesh_shutdown() runs.
** ^Actor and proc meshes keep running until stopped explicitly or until
** their host mesh shuts down.
*/
void mesh_handle_free(uint64_t handle);

/* ---------------------------------------------------------------------
** Procs and instances
*/

/*
** Create a proc. CONSTRUCTOR.
** ^Serves a new proc named name at addr: "unix:" (a fresh abstract unix
** socket; also addr == NULL), "unix:@name", "unix:/path", "tcp:HOST:0" or
** "tcp:HOST:PORT", or "local:0" (reachable only inside this process).
** ^OUT *proc. MESH_EINVAL for a malformed address or name, MESH_EINTERNAL
** if the address cannot be served.
*/
int32_t mesh_proc_create(const char *addr, const char *name, mesh_proc_t *proc);

/*
** Proc id. METHOD.
** ^OUT *id: the proc's id as text, "ADDR,NAME" (for example
** "unix:@k3x9,root"). Free with mesh_buf_free.
*/
int32_t mesh_proc_id(mesh_proc_t proc, mesh_buf_t *id);

/*
** Spawn an actor on an in-process proc. CONSTRUCTOR.
** ^Starts a root actor named name, of the type type_name registered in
** this process with mesh_register_actor_type (the library links in no Go
** actor types but the runtime's own, whose names are reserved), built from
** params (msgpack; NULL/0 for none).
** ^OUT *actor_id (may be NULL): the actor's msgpack id, which mesh_send
** accepts. ^The actor lives until the proc shuts down.
** ^MESH_ENOTFOUND for an unknown type, MESH_EINVAL for a bad or taken name,
** MESH_EINTERNAL if the type's constructor failed (foreign: create returned
** non-zero).
*/
int32_t mesh_proc_spawn(mesh_proc_t proc, const char *name, const char *type_name,
                        const uint8_t *params, size_t params_len, mesh_buf_t *actor_id);

/*
** Create a client instance. CONSTRUCTOR.
** ^A client instance is an actor identity on proc with a mailbox and
** ports but no message loop: what sends, opens ports, and owns meshes.
** ^OUT *inst. MESH_EINVAL if the name is taken or malformed, MESH_ECLOSED
** if the proc is shut down.
*/
int32_t mesh_instance_create(mesh_proc_t proc, const char *name, mesh_instance_t *inst);

/*
** Instance id. METHOD.
** ^OUT *id: the instance's msgpack actor id. Free with mesh_buf_free.
*/
int32_t mesh_instance_id(mesh_instance_t inst, mesh_buf_t *id);

/* ---------------------------------------------------------------------
** Ports
*/

/*
** Open a port. CONSTRUCTOR.
** ^Opens a port on inst that accepts any message. once != 0 makes a port
** that accepts exactly one message (later ones come back undeliverable to
** their senders) and then reads as closed. ^OUT *port; OUT *ref (may be
** NULL): the port's msgpack reference, to embed in payloads so that actors
** can send to it. Free ref with mesh_buf_free.
*/
int32_t mesh_port_open(mesh_instance_t inst, int32_t once, mesh_port_t *port, mesh_buf_t *ref);

/*
** Receive from a port. METHOD.
** ^Waits up to timeout_ms for the next message; messages from one sender
** arrive in the order sent. ^OUT *msg (kind MESH_MSG_DATA, or
** MESH_MSG_SUPERVISION on a supervised port); free it with mesh_msg_free.
** ^MESH_TIMEOUT if none came in time; MESH_ECLOSED once the port is closed
** and drained (the text says why: closed by the receiver, a once port that
** delivered its message, the owner stopped). ^One receiver at a time per
** port. ^A port that belongs to a poller must be read with
** mesh_poller_next or mesh_port_try_recv: this call gives MESH_EINVAL.
** ^The calling thread first spins for up to 100 microseconds
** (environment variable ACTORMESH_RECV_SPIN_US, 0 to sleep at once), since
** a reply from a nearby process often comes sooner than a sleeping thread
** wakes, then sleeps inside the library, leaving the CPU it held to the
** library's other work. ^No more than half the library's CPUs (GOMAXPROCS)
** spin at once, and none when it has one. The Go SDK's receives spin the
** same way.
*/
int32_t mesh_port_recv(mesh_port_t port, int64_t timeout_ms, mesh_msg_t *msg);

/*
** Receive from a port without waiting. METHOD.
** ^As mesh_port_recv with no wait: MESH_OK with OUT *msg, MESH_AGAIN if
** nothing is queued, MESH_ECLOSED once closed and drained.
*/
int32_t mesh_port_try_recv(mesh_port_t port, mesh_msg_t *msg);

/*
** Close a port. METHOD.
** ^Unbinds the port: later messages to it come back undeliverable to their
** senders. ^Messages already queued can still be received; then receivers
** get MESH_ECLOSED, and a blocked receiver wakes. ^Idempotent. The handle
** stays valid until mesh_handle_free.
*/
int32_t mesh_port_close(mesh_port_t port);

/* ---------------------------------------------------------------------
** Pollers: one file descriptor for many sources, for event loops
** (epoll, poll, asyncio's add_reader).
**
** Protocol: call mesh_poller_next until it returns MESH_AGAIN (which arms
** the fd), then wait until the fd is readable, then drain again. The fd
** may be readable with nothing to receive (a spurious wake-up): just drain
** again. Never read or close the fd yourself.
*/

/*
** Create a poller. CONSTRUCTOR.
** ^OUT *fd: an eventfd (CLOEXEC, NONBLOCK) owned by the poller, closed by
** mesh_handle_free(poller) or mesh_shutdown. ^OUT *poller.
*/
int32_t mesh_poller_create(int *fd, mesh_poller_t *poller);

/*
** Add a source to a poller. METHOD.
** ^source is a port (its messages) or an instance (its undeliverable
** messages, kind MESH_MSG_UNDELIVERABLE). ^tag is the caller's, returned by
** mesh_poller_next with each message. ^A source belongs to at most one
** poller: MESH_EINVAL if it is already in one. ^A port that is already
** closed is accepted; mesh_poller_next reports it as MESH_MSG_CLOSED.
*/
int32_t mesh_poller_add(mesh_poller_t poller, uint64_t source, uint64_t tag);

/*
** Remove a source from a poller. METHOD.
** ^Idempotent: MESH_OK if the source was not in the poller. MESH_EBADHANDLE
** for a bad poller or source handle.
*/
int32_t mesh_poller_remove(mesh_poller_t poller, uint64_t source);

/*
** Next message of a poller. METHOD.
** ^Never blocks. MESH_OK with OUT *tag (the source's tag) and OUT *msg
** (free with mesh_msg_free); MESH_AGAIN when every source is empty, which
** arms the fd: it becomes readable when a source may have a message. ^When
** a port closes (and is drained), one message of kind MESH_MSG_CLOSED with
** its tag is returned and the port leaves the poller. ^Sources are served
** round-robin. ^One caller at a time per poller.
*/
int32_t mesh_poller_next(mesh_poller_t poller, uint64_t *tag, mesh_msg_t *msg);

/* ---------------------------------------------------------------------
** Sending
*/

/*
** Send a message. METHOD.
** ^Sends payload (one msgpack value) from inst to ref, which is either a
** msgpack port reference (from mesh_port_open or received in a message)
** or a msgpack actor id (from mesh_actor_mesh_actor_id, mesh_proc_spawn, a
** message's sender). ^type_name is the message's registered type name; an
** actor needs one it knows (for example "testactor.Echo", or "bytes" and
** "string" which every process knows); a port ignores it (NULL means "").
** ^Asynchronous: MESH_OK means the message was accepted for delivery;
** if it cannot be delivered it comes back to inst (see
** mesh_next_undeliverable). ^MESH_EINVAL for a malformed ref or a payload
** that is not exactly one msgpack value, MESH_ETOOBIG for a payload above
** the maximum message size (nothing is sent), MESH_ECLOSED if inst stopped.
*/
int32_t mesh_send(mesh_instance_t inst, const uint8_t *ref, size_t ref_len, const char *type_name,
                  const uint8_t *payload, size_t payload_len);

/*
** Next undeliverable message. METHOD.
** ^Waits up to timeout_ms for a message that inst sent (or cast) and that
** came back. ^OUT *msg of kind MESH_MSG_UNDELIVERABLE: type and payload are
** the original message's, sender the destination's msgpack port id, text
** the reason. ^MESH_TIMEOUT if none; MESH_ECLOSED once inst stopped.
** ^Undeliverable messages queue until read (or until inst is freed).
*/
int32_t mesh_next_undeliverable(mesh_instance_t inst, int64_t timeout_ms, mesh_msg_t *msg);

/* ---------------------------------------------------------------------
** Allocation and meshes
*/

/*
** Create a process allocator. CONSTRUCTOR.
** ^The allocator starts one OS process per rank by running program with
** args (a NULL-terminated array of the arguments after the program name;
** NULL for none) and env (a NULL-terminated array of "KEY=VALUE" added to
** this process's environment; NULL for none). ^The program must run the
** bootstrap: the Go bootstrap binary, or a C program that returns
** mesh_bootstrap_main() when mesh_bootstrap_requested(). ^Hosts launch
** their procs with the same program and args. ^OUT *alloc. Nothing starts
** until mesh_host_mesh_allocate.
*/
int32_t mesh_allocator_process(const char *program, const char *const *args, const char *const *env,
                               mesh_allocator_t *alloc);

/*
** Allocate a host mesh. CONSTRUCTOR.
** ^Starts one host process per rank of extent with alloc, waits until
** every host runs (at most timeout_ms), and returns the hosts as a mesh
** named name, owned by inst. ^OUT *hm. ^On any failure nothing is left
** running; MESH_TIMEOUT if the hosts did not come up in time,
** MESH_EINTERNAL if one failed (mesh_errmsg has its exit status and last
** output lines).
*/
int32_t mesh_host_mesh_allocate(mesh_instance_t inst, mesh_allocator_t alloc, const char *extent,
                                const char *name, int64_t timeout_ms, mesh_host_mesh_t *hm);

/*
** Spawn a proc mesh. CONSTRUCTOR.
** ^Starts per_host procs (an extent, "gpus=2") on every host of hm, each a
** new OS process, and waits until all are ready. ^The proc mesh's extent is
** the hosts' dimensions followed by per_host's. ^OUT *pm. On failure the
** procs that started are stopped.
*/
int32_t mesh_host_mesh_spawn(mesh_instance_t inst, mesh_host_mesh_t hm, const char *name,
                             const char *per_host, int64_t timeout_ms, mesh_proc_mesh_t *pm);

/*
** Stop a host mesh's procs. METHOD.
** ^Stops every proc mesh spawned on hm and waits (at most timeout_ms); the
** hosts stay up and can spawn again.
*/
int32_t mesh_host_mesh_stop(mesh_instance_t inst, mesh_host_mesh_t hm, int64_t timeout_ms);

/*
** Shut a host mesh down. METHOD.
** ^Drains every host (stopping all its procs), shuts the hosts down and
** waits until every OS process of the mesh has exited (at most
** timeout_ms). ^Idempotent. The handle stays valid until mesh_handle_free.
*/
int32_t mesh_host_mesh_shutdown(mesh_instance_t inst, mesh_host_mesh_t hm, int64_t timeout_ms);

/*
** Stop a proc mesh. METHOD.
** ^Stops every proc of pm (their actors stop first) and waits until they
** are gone, at most timeout_ms.
*/
int32_t mesh_proc_mesh_stop(mesh_instance_t inst, mesh_proc_mesh_t pm, int64_t timeout_ms);

/*
** Spawn an actor mesh. CONSTRUCTOR.
** ^Starts an actor named name of the registered type type_name on every
** proc of pm, built from params (msgpack; NULL/0 for none), and waits until
** all started (at most timeout_ms). ^The type must be known in the procs'
** processes (linked into the bootstrap binary, or registered by a C
** bootstrap program with mesh_register_actor_type). ^Type names starting
** with "mesh.", "alloc.", "actormesh." or "capi." are reserved
** (MESH_EINVAL). ^OUT *am, owned by inst: its failures are reported to inst.
** ^MESH_ENOTFOUND if the type is unknown there; MESH_EINTERNAL if a
** constructor failed (the text names each rank and why). ^MESH_EINVAL if
** an actor mesh of that name runs on pm and was not stopped. ^The procs
** remember a failed spawn by name: spawning the name again on the same
** proc mesh answers the first outcome.
*/
int32_t mesh_actor_mesh_spawn(mesh_instance_t inst, mesh_proc_mesh_t pm, const char *name,
                              const char *type_name, const uint8_t *params, size_t params_len,
                              int64_t timeout_ms, mesh_actor_mesh_t *am);

/*
** Number of ranks of an actor mesh (or slice). METHOD.  ^OUT *size.
*/
int32_t mesh_actor_mesh_size(mesh_actor_mesh_t am, int32_t *size);

/*
** Id of one actor. METHOD.
** ^OUT *id: the msgpack actor id of the actor at rank (0 <= rank < size),
** byte for byte what that actor reports as its own id. MESH_EINVAL for a
** rank out of range.
*/
int32_t mesh_actor_mesh_actor_id(mesh_actor_mesh_t am, int32_t rank, mesh_buf_t *id);

/*
** Slice an actor mesh. CONSTRUCTOR.
** ^OUT *out: the view of am with dimension dim restricted to [from, to).
** ^Ranks of the slice count from 0 in row-major order. MESH_ENOTFOUND for
** an unknown dimension, MESH_EINVAL for an empty or out-of-range range.
** ^A slice is a view: stopping it stops the whole mesh.
*/
int32_t mesh_actor_mesh_slice(mesh_actor_mesh_t am, const char *dim, int32_t from, int32_t to,
                              mesh_actor_mesh_t *out);

/*
** Stop an actor mesh. METHOD.
** ^Stops the actors of the whole mesh (am may be a slice) and waits for
** them, at most timeout_ms. ^Later casts and calls give MESH_ECLOSED.
*/
int32_t mesh_actor_mesh_stop(mesh_instance_t inst, mesh_actor_mesh_t am, int64_t timeout_ms);

/*
** Extent of a mesh. METHOD.
** ^mesh is a host, proc, actor or value mesh handle. ^OUT *extent: its
** extent as text, "{hosts: 2, gpus: 2}" ("{}" for unity).
*/
int32_t mesh_extent(uint64_t mesh, mesh_buf_t *extent);

/*
** Cast a message. METHOD.
** ^Sends the message (type_name, payload) from inst to every actor of am;
** each actor receives it with its rank in am (mesh_ctx_rank, or
** mesh.CastInfoOf in Go). Replies, if the message asks for them, go to the
** ports embedded in payload. ^type_name must be a message type registered
** in the actors' processes (for example "testactor.GetActorID", payload
** {"Reply": <port ref>}); this process does not decode the payload. ^The
** message travels through the mesh's cast tree: messages from one sender
** reach each actor in order. ^Asynchronous like mesh_send: what cannot be
** delivered, a payload the actors cannot decode included, comes back to
** inst with the reason. ^MESH_ESUPERVISION (nothing sent) if ranks of am have failed;
** MESH_ECLOSED if am was stopped; MESH_EINVAL, MESH_ETOOBIG as mesh_send.
*/
int32_t mesh_cast(mesh_instance_t inst, mesh_actor_mesh_t am, const char *type_name,
                  const uint8_t *payload, size_t payload_len);

/*
** Call a method on every actor. CONSTRUCTOR (of a value mesh).
** ^Casts a method call (method, payload: msgpack, NULL/0 for nil) to every
** actor of am and gathers one answer per rank until all answered or
** timeout_ms passed (-1: HYPERACTOR_MESH_CALL_TIMEOUT, 30 s by default;
** a call never waits without a bound). ^Every actor type of the library answers method calls:
** foreign actors get them as handle(method, payload); Go actors that
** handle mesh.MethodCall. ^OUT *vm: one result per rank (see
** mesh_value_mesh_get); MESH_OK even if some ranks failed or timed out.
** ^The call itself fails only if the cast does (MESH_ESUPERVISION,
** MESH_ECLOSED, MESH_EINVAL, MESH_ETOOBIG).
*/
int32_t mesh_call(mesh_instance_t inst, mesh_actor_mesh_t am, const char *method,
                  const uint8_t *payload, size_t payload_len, int64_t timeout_ms,
                  mesh_value_mesh_t *vm);

/*
** Number of ranks of a value mesh. METHOD.  ^OUT *size.
*/
int32_t mesh_value_mesh_size(mesh_value_mesh_t vm, int32_t *size);

/*
** One rank of a value mesh. METHOD.
** ^OUT *status: MESH_OK (the actor answered; *out is its msgpack reply),
** MESH_EREMOTE (the actor answered with an error; *out is its text),
** MESH_ESUPERVISION (the actor or its proc failed; *out says how) or
** MESH_TIMEOUT (no answer in time; *out says so). ^OUT *out: free with
** mesh_buf_free. ^The function itself returns MESH_OK, or MESH_EINVAL for a
** rank out of range. May be read any number of times.
*/
int32_t mesh_value_mesh_get(mesh_value_mesh_t vm, int32_t rank, int32_t *status, mesh_buf_t *out);

/*
** Supervise an actor mesh. METHOD.
** ^From now on every failure of a rank of am (an actor's error or panic,
** its proc's death) arrives on port as a message of kind
** MESH_MSG_SUPERVISION: rank is the failed rank (of the whole mesh), text
** a readable cause ("mesh: failure on mesh \"a0\" at ranks [1]: actor ...
** failed: ..."), payload the msgpack mesh.MeshFailure. ^Failures that
** already happened are delivered first. ^The subscription ends when the
** port closes or inst stops.
*/
int32_t mesh_supervise(mesh_instance_t inst, mesh_actor_mesh_t am, mesh_port_t port);

/* ---------------------------------------------------------------------
** Foreign actors: actor types implemented by C callbacks.
*/

/* The context of one callback; valid only during that callback. */
typedef struct mesh_ctx mesh_ctx_t;

typedef struct mesh_actor_vtable {
    /* Builds an actor's state from params (msgpack, len 0 if none); sets
       *state and returns 0, or returns non-zero to refuse (the spawn fails
       with that code in its error text). user is the pointer given to
       mesh_register_actor_type. */
    int32_t (*create)(void *user, const uint8_t *params, size_t len, void **state);
    /* Handles one message. A method call (mesh_call) arrives as
       (method, payload); any other message as (its registered type name,
       its msgpack body). Answer a method call with mesh_ctx_reply or
       mesh_ctx_reply_error; returning without answering answers an error
       for you. Return 0; non-zero fails the actor (a supervision event
       with that code). */
    int32_t (*handle)(void *state, mesh_ctx_t *ctx, const char *method_or_type,
                      const uint8_t *payload, size_t len);
    /* Releases the state, once, when the actor stops (NULL: nothing to do).
       Not called if create failed. */
    void (*destroy)(void *state);
} mesh_actor_vtable_t;

/*
** Register a foreign actor type. CONSTRUCTOR (process-wide).
** ^Registers name (not reserved: see mesh_actor_mesh_spawn) as an actor type
** whose actors run vt's callbacks with user. The vtable is copied;
** user must stay valid while actors of the type may be created.
** ^Actors of the type can then be spawned by name in this process's procs
** (mesh_proc_spawn) and, when this program is the bootstrap binary, by any
** client in the procs it serves (mesh_actor_mesh_spawn, or a Go client).
** ^Registering a name again replaces the callbacks for new actors.
** ^Threads: all callbacks of one actor run on one thread owned by the
** library (the same thread for its create, every handle and its destroy),
** one message at a time, never while the library holds a lock; a callback
** may call any mesh_* function. ^Does not need mesh_init.
*/
int32_t mesh_register_actor_type(const char *name, const mesh_actor_vtable_t *vt, void *user);

/*
** Answer a method call. METHOD.
** ^Sends payload (msgpack; NULL/0 for nil) as the answer to the method
** call being handled. ^MESH_ESTATE if ctx is not in a handle callback, the
** message is not a method call, or it was answered already.
*/
int32_t mesh_ctx_reply(mesh_ctx_t *ctx, const uint8_t *payload, size_t len);

/*
** Answer a method call with an error. METHOD.
** ^The caller's value mesh gets MESH_EREMOTE with msg at this rank.
** ^MESH_ESTATE as mesh_ctx_reply.
*/
int32_t mesh_ctx_reply_error(mesh_ctx_t *ctx, const char *msg);

/*
** Rank of the message being handled. METHOD.
** ^OUT *rank: the actor's rank in the mesh (or slice) the message was cast
** or called to, or -1 if it was sent directly.
*/
int32_t mesh_ctx_rank(mesh_ctx_t *ctx, int32_t *rank);

/*
** Id of the actor being called. METHOD.
** ^OUT *id: the actor's msgpack id. Free with mesh_buf_free.
*/
int32_t mesh_ctx_self(mesh_ctx_t *ctx, mesh_buf_t *id);

/*
** Send from the actor being called. METHOD.
** ^As mesh_send, with the actor as the sender.
*/
int32_t mesh_ctx_send(mesh_ctx_t *ctx, const uint8_t *ref, size_t ref_len, const char *type_name,
                      const uint8_t *payload, size_t payload_len);

/* ---------------------------------------------------------------------
** Foreign bootstrap: a C program (or an interpreter) as the program that
** allocators and hosts launch.
**
**     int main(int argc, char **argv) {
**         mesh_register_actor_type("demo.Adder", &adder_vtable, NULL);
**         if (mesh_bootstrap_requested())
**             return mesh_bootstrap_main();
**         ... act as a client ...
**     }
*/

/*
** Whether this process was started as a mesh child. METHOD.
** ^Returns 1 if the bootstrap environment (HYPERACTOR_MESH_BOOTSTRAP_MODE
** or HYPERACTOR_MESH_BOOTSTRAP_ADDR) is set, else 0. Does not need
** mesh_init. MESH_EFORKED in a forked child.
*/
int32_t mesh_bootstrap_requested(void);

/*
** Run the bootstrap. METHOD.
** ^Runs what the bootstrap environment asks for (a host, a proc) until it
** ends, and returns the process exit code to return from main (0 on a
** clean stop). Blocks for the life of the child. Does not need mesh_init
** and must not be mixed with client use in the same process.
*/
int32_t mesh_bootstrap_main(void);

#ifdef __cplusplus
}
#endif

#endif /* MESH_H */
