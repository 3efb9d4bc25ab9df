package tests

// The canonical flow through libmesh.so from Go, loaded with purego (no cgo
// on the calling side), as a foreign host would drive it.
//
// Go supports one Go runtime per process (golang/go#65050, #16805): a
// c-shared Go library loaded into a Go program starts a second one. On
// linux/amd64 that works for this library under two conditions, which
// this test meets:
//   - the library is preloaded (LD_PRELOAD): its runtime uses initial-exec
//     TLS, which a plain dlopen after start-up cannot provide ("cannot
//     allocate memory in static TLS block");
//   - the two runtimes do not share signal-driven state: each handles its
//     own threads' signals (the library forwards signals of threads it
//     does not know to the handler installed before it).
// The client therefore runs in a child process (this test binary run
// again with ACTORMESH_PUREGO_CHILD set), so that the arrangement cannot
// disturb the rest of the tests, and its own children are told not to
// preload the library.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/ebitengine/purego"
	"github.com/stretchr/testify/assert"
)

const puregoChildEnv = "ACTORMESH_PUREGO_CHILD"

func TestCapiPurego(t *testing.T) {
	if os.Getenv(puregoChildEnv) != "" {
		t.Skip("runs in the parent only")
	}
	dir := buildLib(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestCapiPuregoChild$", "-test.v", "-test.count=1")
	lib := filepath.Join(dir, "libmesh.so")
	// The library's runtime uses initial-exec TLS, which dlopen cannot
	// give a library loaded after start-up ("cannot allocate memory in
	// static TLS block"); preloading it reserves that TLS at exec time,
	// and purego's dlopen then finds it loaded.
	cmd.Env = append(os.Environ(), puregoChildEnv+"="+lib, "LD_PRELOAD="+lib, "ACTORMESH_PUREGO_BOOTSTRAP="+bootstrapBin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Log(out.String())
	if err != nil {
		t.Fatalf("the purego child failed: %v", err)
	}
	assert.Contains(t, out.String(), "--- PASS: TestCapiPuregoChild")
	assert.Empty(t, testutil.WaitNoDescendants(10*time.Second), "processes left behind")
}

// meshBuf and meshMsg mirror mesh_buf_t and mesh_msg_t.
type meshBuf struct {
	Data *byte
	Len  uintptr
}

func (b *meshBuf) bytes() []byte {
	if b.Len == 0 {
		return nil
	}
	return unsafe.Slice(b.Data, b.Len)
}

type meshMsg struct {
	Kind    int32
	Rank    int32
	Type    meshBuf
	Payload meshBuf
	Sender  meshBuf
	Text    meshBuf
}

// TestCapiPuregoChild is the purego client; it only runs in the child.
func TestCapiPuregoChild(t *testing.T) {
	path := os.Getenv(puregoChildEnv)
	if path == "" {
		t.Skip("run by TestCapiPurego in a child process")
	}
	bootstrap := os.Getenv("ACTORMESH_PUREGO_BOOTSTRAP")
	lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Fatalf("dlopen %s: %v", path, err)
	}
	var (
		abiVersion       func() int32
		initLib          func(cfg *byte) int32
		errmsg           func() string
		statusName       func(int32) string
		procCreate       func(addr, name string, out *uint64) int32
		instanceCreate   func(proc uint64, name string, out *uint64) int32
		allocatorProcess func(program string, args, env unsafe.Pointer, out *uint64) int32
		hostMeshAllocate func(inst, alloc uint64, extent, name string, timeout int64, out *uint64) int32
		hostMeshSpawn    func(inst, hm uint64, name, perHost string, timeout int64, out *uint64) int32
		actorMeshSpawn   func(inst, pm uint64, name, typ string, params unsafe.Pointer, n uintptr, timeout int64, out *uint64) int32
		actorMeshID      func(am uint64, rank int32, out *meshBuf) int32
		portOpen         func(inst uint64, once int32, port *uint64, ref *meshBuf) int32
		portRecv         func(port uint64, timeout int64, msg *meshMsg) int32
		cast             func(inst, am uint64, typ string, payload *byte, n uintptr) int32
		hostMeshShutdown func(inst, hm uint64, timeout int64) int32
		bufFree          func(*meshBuf)
		msgFree          func(*meshMsg)
		handleFree       func(uint64)
		shutdown         func(timeout int64) int32
	)
	for name, fn := range map[string]any{
		"mesh_abi_version": &abiVersion, "mesh_init": &initLib, "mesh_errmsg": &errmsg, "mesh_status_name": &statusName,
		"mesh_proc_create": &procCreate, "mesh_instance_create": &instanceCreate, "mesh_allocator_process": &allocatorProcess,
		"mesh_host_mesh_allocate": &hostMeshAllocate, "mesh_host_mesh_spawn": &hostMeshSpawn,
		"mesh_actor_mesh_spawn": &actorMeshSpawn, "mesh_actor_mesh_actor_id": &actorMeshID, "mesh_port_open": &portOpen,
		"mesh_port_recv": &portRecv, "mesh_cast": &cast, "mesh_host_mesh_shutdown": &hostMeshShutdown,
		"mesh_buf_free": &bufFree, "mesh_msg_free": &msgFree, "mesh_handle_free": &handleFree, "mesh_shutdown": &shutdown,
	} {
		purego.RegisterLibFunc(fn, lib, name)
	}
	must := func(what string, rc int32) {
		t.Helper()
		if rc != 0 {
			t.Fatalf("%s: %s: %s", what, statusName(rc), errmsg())
		}
	}
	if v := abiVersion(); v != 1 {
		t.Fatalf("mesh_abi_version() = %d, want 1 (MESH_ABI_VERSION)", v)
	}
	os.Setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false")
	must("mesh_init", initLib(nil))

	// 1) A root proc, 2) a client instance, 3) a process allocator.
	var proc, inst, alloc, hm, pm, am, port uint64
	must("mesh_proc_create", procCreate("unix:", "root", &proc))
	must("mesh_instance_create", instanceCreate(proc, "client", &inst))
	// The children must not preload the library (see TestCapiPurego).
	noPreload := append([]byte("LD_PRELOAD="), 0)
	env := []*byte{&noPreload[0], nil}
	must("mesh_allocator_process", allocatorProcess(bootstrap, nil, unsafe.Pointer(&env[0]), &alloc))
	runtime.KeepAlive(noPreload)
	// 4, 5) Allocate the host mesh; 6) spawn a proc mesh; 7) spawn TestActor.
	must("mesh_host_mesh_allocate", hostMeshAllocate(inst, alloc, "replicas=1", "test", 60000, &hm))
	must("mesh_host_mesh_spawn", hostMeshSpawn(inst, hm, "p0", "", 60000, &pm))
	must("mesh_actor_mesh_spawn", actorMeshSpawn(inst, pm, "a0", "testactor.TestActor", nil, 0, 60000, &am))

	// 8) Cast GetActorID with a reply port; the reply is the actor's id.
	ref := new(meshBuf)
	must("mesh_port_open", portOpen(inst, 0, &port, ref))
	payload := append([]byte{0x81, 0xa5, 'R', 'e', 'p', 'l', 'y'}, ref.bytes()...)
	must("mesh_cast", cast(inst, am, "testactor.GetActorID", &payload[0], uintptr(len(payload))))
	msg := new(meshMsg)
	must("mesh_port_recv", portRecv(port, 30000, msg))
	want := new(meshBuf)
	must("mesh_actor_mesh_actor_id", actorMeshID(am, 0, want))
	if !bytes.Equal(msg.Payload.bytes(), want.bytes()) {
		t.Errorf("reply %x, want the actor's id %x", msg.Payload.bytes(), want.bytes())
	}
	fmt.Printf("purego: actor id %d bytes, reply type %q\n", want.Len, msg.Type.bytes())
	msgFree(msg)
	bufFree(want)
	bufFree(ref)

	// 9) Shut down: no process may remain.
	must("mesh_host_mesh_shutdown", hostMeshShutdown(inst, hm, 60000))
	for _, h := range []uint64{port, am, pm, hm, alloc, inst, proc} {
		handleFree(h)
	}
	must("mesh_shutdown", shutdown(10000))
	if left := testutil.WaitNoDescendants(10 * time.Second); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
}
