package tests

import (
	"context"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/require"
)

// TestBootstrapCanonicalSimple is Monarch's bootstrap_canonical_simple,
// step by step.
func TestBootstrapCanonicalSimple(t *testing.T) {
	// Not in the seed: after the test, no goroutine of it may remain (nor,
	// checked again after step 9, any process, orphans included).
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Unit-test scoped: children inherit it, and rely on heartbeats
	// instead of the parent-death signal.
	t.Setenv("HYPERACTOR_MESH_BOOTSTRAP_ENABLE_PDEATHSIG", "false")

	// 1) Create a "root" direct-addressed proc.
	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	require.NoError(t, err)
	defer proc.Shutdown(context.Background())

	// 2) Create an actor instance we'll use to send and receive messages.
	instance, _, err := proc.Instance("client")
	require.NoError(t, err)

	// 3) Configure a ProcessAllocator with the bootstrap binary.
	allocator := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin})

	// 4) Request a new allocation of procs from the ProcessAllocator.
	a, err := allocator.Allocate(ctx, alloc.Spec{
		Extent:    alloc.MustExtent("replicas", 1),
		Transport: transport.Unix,
	})
	require.NoError(t, err)

	// 5) Build a HostMesh with explicit OS-process boundaries (per rank):
	//
	// (1) Allocator → bootstrap proc [OS process #1]
	// The allocator starts one OS process per rank; each runs our
	// runtime, a proc with its agent, which acts as the trampoline.
	//
	// (2) The host is set up in the same OS process (no new process):
	// the trampoline spawns a HostAgent in that proc, and the agent owns
	// the proc manager used for later spawns.
	//
	// (3) Install HostAgent (still no new OS process). The agent of the
	// allocated proc spawns "host_agent" by its registered type name.
	//
	// (4) Collect & assemble. Each trampoline returns the HostAgent's
	// direct-addressed id; we collect one per rank, check that it lives at
	// the allocated address, and assemble a HostMesh.
	//
	// Note: When the host is later asked to start a proc, its HostAgent
	// launches a new OS child process (this binary in proc mode) for it.
	hostMesh, err := mesh.AllocateHostMesh(ctx, instance, a, "test", nil)
	require.NoError(t, err)

	// 6) Spawn a ProcMesh named "p0" on the host mesh:
	//
	// (1) Each HostAgent (running inside its host's proc) receives the
	// request.
	//
	// (2) The host launches a brand-new OS process for the proc.
	//
	// (3) Inside that new process, bootstrap runs and a ProcAgent is
	// started to manage it.
	//
	// (4) We collect the per-host procs into a ProcMesh and return it.
	procMesh, err := hostMesh.Spawn(ctx, instance, "p0", alloc.Unity())
	require.NoError(t, err)

	// 7) Spawn an ActorMesh<TestActor> named "a0" on the proc mesh:
	//
	// (1) For each proc (already running in its own OS process), the
	// ProcAgent receives the request.
	//
	// (2) It spawns a TestActor inside that existing proc (no new OS
	// process).
	//
	// (3) The per-proc actors are collected into an ActorMesh[TestActor]
	// and returned.
	actorMesh, err := mesh.Spawn[*testactor.TestActor](ctx, instance, procMesh, "a0", struct{}{})
	require.NoError(t, err)

	// 8) Open a fresh port on the client instance and send a GetActorID
	// message to the actor mesh. Each TestActor will reply with its actor
	// ID to the bound port. Receive one reply and assert it matches the ID
	// of the (single) actor in the mesh.
	port, rx := core.OpenPort[core.ActorID](instance)
	require.NoError(t, actorMesh.Cast(instance, testactor.GetActorID{Reply: port.Bind()}))
	gotID, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, actorMesh.Values()[0].ID, gotID)

	// 9) Important: shut down, or we'll leak the OS children the hosts spawned.
	require.NoError(t, hostMesh.Shutdown(ctx, instance), "host shutdown")
	require.Empty(t, testutil.WaitNoDescendants(10*time.Second), "no OS process may remain")
}
