package tests

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// ask sends a request built around a once port and waits for the answer.
func ask[R any](t *testing.T, f *fixture, to core.ActorID, build func(core.PortRef[R]) any) R {
	t.Helper()
	port, rx := core.OpenOncePort[R](f.inst)
	require.NoError(t, core.ActorRef{ID: to}.Send(f.inst, build(port.Bind())))
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	v, err := rx.Recv(ctx)
	require.NoError(t, err)
	return v
}

// createProc asks host for a proc named name in mesh meshName and returns
// the host's answer, whatever the proc's status.
func createProc(t *testing.T, f *fixture, host core.ActorID, name, meshName string) mesh.ProcInfo {
	t.Helper()
	return ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any { return mesh.CreateProc{Name: name, Mesh: meshName, Reply: r} })
}

// testActorIn starts a proc named name on host, with a TestActor in it.
func testActorIn(t *testing.T, f *fixture, host core.ActorID, name string) (mesh.ProcInfo, core.ActorID) {
	t.Helper()
	created := readyProc(t, f, host, name, "m")
	spawned := ask(t, f, created.Agent, func(r core.PortRef[mesh.SpawnResult]) any {
		return mesh.SpawnActor{Name: "t", Type: testactor.TypeName, Reply: r}
	})
	require.Empty(t, spawned.Err)
	return created, spawned.Actor
}

// readyProc is createProc for a proc that must come up.
func readyProc(t *testing.T, f *fixture, host core.ActorID, name, meshName string) mesh.ProcInfo {
	t.Helper()
	info := createProc(t, f, host, name, meshName)
	require.Equal(t, mesh.ProcReady, info.Status, info.Cause())
	return info
}

func TestHostAgentProcLifecycle(t *testing.T) {
	t.Setenv(mesh.EnvTerminateTimeout, "300ms")
	f := newHostMesh(t, 1)
	host := f.hm.Hosts()[0]

	created := readyProc(t, f, host, "solo", "m")
	assert.True(t, testutil.Alive(created.PID))
	assert.Equal(t, "solo", created.ProcID.Name)
	assert.Equal(t, created.ProcID.ActorID(mesh.ProcAgentName, 0), created.Agent)

	// Creating again by the same name is idempotent: same process.
	again := createProc(t, f, host, "solo", "m")
	assert.Equal(t, created.PID, again.PID)
	list := ask(t, f, host, func(r core.PortRef[[]mesh.ProcInfo]) any { return mesh.ListProcs{Reply: r} })
	require.Len(t, list, 1)
	unknown := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any { return mesh.GetProc{Name: "nope", Reply: r} })
	assert.Equal(t, mesh.ProcFailed, unknown.Status)
	assert.Contains(t, unknown.Reason, "unknown proc")

	// The proc agent spawns by type name, idempotently, and reports status.
	agent := created.Agent
	spawn := func() mesh.SpawnResult {
		return ask(t, f, agent, func(r core.PortRef[mesh.SpawnResult]) any {
			return mesh.SpawnActor{Name: "t", Type: testactor.TypeName, Reply: r}
		})
	}
	first := spawn()
	require.Empty(t, first.Err)
	assert.Equal(t, first.Actor, spawn().Actor)
	bad := ask(t, f, agent, func(r core.PortRef[mesh.SpawnResult]) any {
		return mesh.SpawnActor{Name: "x", Type: "no.such.Type", Reply: r}
	})
	assert.Contains(t, bad.Err, "unknown actor type")
	st := ask(t, f, agent, func(r core.PortRef[mesh.ActorStatus]) any { return mesh.GetActorStatus{Name: "t", Reply: r} })
	assert.True(t, st.Exists)
	assert.False(t, st.Status.Terminal())

	// A handler that never finishes: the agent cannot stop the actor, so
	// the host escalates to SIGTERM, and the proc ends killed by it.
	port, _ := core.OpenPort[bool](f.inst)
	require.NoError(t, core.ActorRef{ID: first.Actor}.Send(f.inst, testactor.Sleep{D: time.Hour, Reply: port.Bind()}))
	waiter, wrx := core.OpenOncePort[mesh.ProcInfo](f.inst)
	require.NoError(t, core.ActorRef{ID: host}.Send(f.inst, mesh.WaitProc{Name: "solo", Min: mesh.ProcStopped, Reply: waiter.Bind()}))
	stopped := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any { return mesh.StopProc{Name: "solo", Reason: "test", Reply: r} })
	assert.Equal(t, mesh.ProcKilled, stopped.Status, stopped.Cause())
	assert.Equal(t, int(syscall.SIGTERM), stopped.Signal)
	assert.True(t, stopped.Requested)
	waited, err := wrx.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, stopped.Status, waited.Status, "WaitProc answers once the proc is gone")
	assert.False(t, testutil.Alive(created.PID))
}

func TestProcAgentStopAllReportsFailures(t *testing.T) {
	f := newHostMesh(t, 1)
	pm, err := f.hm.Spawn(f.ctx, f.inst, "p", alloc.Unity())
	require.NoError(t, err)
	am, err := mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, "a", struct{}{})
	require.NoError(t, err)
	_, err = mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, "b", struct{}{})
	require.NoError(t, err)
	agent := pm.Agents()[0]

	stopped := ask(t, f, agent, func(r core.PortRef[string]) any { return mesh.StopActor{Name: "b", Reason: "done", Reply: r} })
	assert.Empty(t, stopped)
	st := ask(t, f, agent, func(r core.PortRef[mesh.ActorStatus]) any { return mesh.GetActorStatus{Name: "b", Reply: r} })
	assert.Equal(t, core.StatusStopped, st.Status)

	failures := f.subscribe(t, am)
	require.NoError(t, am.Values()[0].Send(f.inst, testactor.Fail{Msg: "broken"}))
	failure, err := failures.Recv(f.ctx)
	require.NoError(t, err)
	assert.Contains(t, failure.Cause, "broken")
	st = ask(t, f, agent, func(r core.PortRef[mesh.ActorStatus]) any { return mesh.GetActorStatus{Name: "a", Reply: r} })
	assert.Equal(t, core.StatusFailed, st.Status)
	assert.Contains(t, st.Err, "broken")

	// Find the proc by its process id: the host names it, not the test.
	host := f.hm.Hosts()[0]
	var name string
	for _, p := range ask(t, f, host, func(r core.PortRef[[]mesh.ProcInfo]) any { return mesh.ListProcs{Reply: r} }) {
		if p.PID == pm.PIDs()[0] {
			name = p.Name
		}
	}
	require.NotEmpty(t, name, "the host does not list proc pid %d", pm.PIDs()[0])

	code := ask(t, f, agent, func(r core.PortRef[int]) any { return mesh.StopAll{Reason: "test", Reply: r} })
	assert.Equal(t, 1, code, "a failed actor makes the proc exit with 1")
	// The reply is the agent's word; the host sees what the process did.
	exited := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any {
		return mesh.WaitProc{Name: name, Min: mesh.ProcStopped, Reply: r}
	})
	assert.Equal(t, mesh.ProcStopped, exited.Status, exited.Cause())
	assert.Equal(t, 1, exited.ExitCode, exited.Cause())
	assert.False(t, exited.Requested, "the host did not stop it: it exited after StopAll")
	assert.False(t, testutil.Alive(pm.PIDs()[0]))
}

// Draining a host stops its procs (of one mesh, or all) but keeps the
// host: it launches procs again afterwards.
func TestHostAgentDrainKeepsHost(t *testing.T) {
	f := newHostMesh(t, 1)
	host := f.hm.Hosts()[0]
	a1, b1 := readyProc(t, f, host, "a1", "a"), readyProc(t, f, host, "b1", "b")
	hostProc := hostPID(t, a1.PID)

	drained := ask(t, f, host, func(r core.PortRef[mesh.DrainResult]) any { return mesh.DrainHost{Mesh: "a", Reply: r} })
	assert.Equal(t, mesh.DrainResult{Stopped: 1}, drained)
	assert.False(t, testutil.Alive(a1.PID), "a drained proc is gone when the drain replies")
	assert.True(t, testutil.Alive(b1.PID), "a drain of mesh a spares mesh b")

	drained = ask(t, f, host, func(r core.PortRef[mesh.DrainResult]) any { return mesh.DrainHost{Reply: r} })
	assert.Equal(t, mesh.DrainResult{Stopped: 1}, drained)
	assert.False(t, testutil.Alive(b1.PID))
	assert.Empty(t, ask(t, f, host, func(r core.PortRef[[]mesh.ProcInfo]) any { return mesh.ListProcs{Reply: r} }), "a drain forgets its procs")

	// The host is still there and works: a new proc, reused name included.
	assert.True(t, testutil.Alive(hostProc), "the host survived its drain")
	for _, name := range []string{"c1", "a1"} {
		p := readyProc(t, f, host, name, "c")
		assert.True(t, testutil.Alive(p.PID))
		assert.Equal(t, hostProc, hostPID(t, p.PID), "launched by the same host")
		assert.Equal(t, p.ProcID, ask(t, f, p.Agent, func(r core.PortRef[core.ProcID]) any { return mesh.Ping{Reply: r} }))
	}
}

// A proc that ignores SIGTERM and whose actor never finishes: staged
// termination asks its agent, then SIGTERMs, and ends with SIGKILL.
func TestHostAgentStopEscalatesToSIGKILL(t *testing.T) {
	// Short stages, and a proc that cannot exit on its own in time: its
	// own shutdown waits up to 5s for the stuck actor, longer than the
	// three stages of 300ms.
	t.Setenv(mesh.EnvTerminateTimeout, "300ms")
	f := newHostMesh(t, 1)
	host := f.hm.Hosts()[0]
	created, actor := testActorIn(t, f, host, "stubborn")

	require.True(t, ask(t, f, actor, func(r core.PortRef[bool]) any { return testactor.IgnoreSIGTERM{Reply: r} }))
	require.True(t, sigIgnored(t, created.PID, syscall.SIGTERM), "the proc ignores SIGTERM")
	port, rx := core.OpenPort[bool](f.inst)
	defer rx.Close()
	require.NoError(t, core.ActorRef{ID: actor}.Send(f.inst, testactor.Sleep{D: time.Hour, Reply: port.Bind()}))

	stopped := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any {
		return mesh.StopProc{Name: "stubborn", Reason: "test", Reply: r}
	})
	assert.Equal(t, mesh.ProcKilled, stopped.Status, stopped.Cause())
	assert.Equal(t, int(syscall.SIGKILL), stopped.Signal, stopped.Cause())
	assert.Contains(t, stopped.Cause(), "killed by signal 9")
	assert.True(t, stopped.Requested)
	assert.False(t, testutil.Alive(created.PID))
}

// What a proc started and left in its process group ends with the proc;
// and a proc that exits with 0 is reported stopped with 0, though a child
// of its own held its output open.
func TestHostAgentProcTakesItsChildren(t *testing.T) {
	f := newHostMesh(t, 1)
	host := f.hm.Hosts()[0]
	_, actor := testActorIn(t, f, host, "parent")
	child := ask(t, f, actor, func(r core.PortRef[int]) any {
		return testactor.StartChild{Args: []string{"sleep", "3600"}, Reply: r}
	})
	require.True(t, testutil.Alive(child))

	waiter, wrx := core.OpenOncePort[mesh.ProcInfo](f.inst)
	require.NoError(t, core.ActorRef{ID: host}.Send(f.inst, mesh.WaitProc{Name: "parent", Min: mesh.ProcStopped, Reply: waiter.Bind()}))
	require.NoError(t, core.ActorRef{ID: actor}.Send(f.inst, testactor.Exit{Code: 0}))
	exited, err := wrx.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, mesh.ProcStopped, exited.Status, exited.Cause())
	assert.Equal(t, 0, exited.ExitCode)
	assert.Empty(t, testutil.WaitDead([]int{child}, 10*time.Second), "the proc's child outlived it")
}

// sigIgnored reads whether pid ignores sig.
func sigIgnored(t *testing.T, pid int, sig syscall.Signal) bool {
	t.Helper()
	ignored, err := testutil.SigIgnored(pid, sig)
	require.NoError(t, err)
	return ignored
}

func TestMethodCall(t *testing.T) {
	f := newHostMesh(t, 1)
	_, am := f.spawn(t, "p", "a", 2)
	vm, err := mesh.Call(f.ctx, f.inst, am, func(r core.PortRef[mesh.MethodReply]) any {
		return mesh.MethodCall{Method: "GetActorID", Reply: r}
	})
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	for rank, reply := range vm.Values {
		require.Empty(t, reply.Err)
		var id core.ActorID
		require.NoError(t, msgpack.Unmarshal(reply.Payload, &id))
		assert.Equal(t, am.Values()[rank].ID, id)
	}
	vm, err = mesh.Call(f.ctx, f.inst, am, func(r core.PortRef[mesh.MethodReply]) any {
		return mesh.MethodCall{Method: "Nope", Reply: r}
	})
	require.NoError(t, err)
	assert.Contains(t, vm.Values[0].Err, "unknown method")
}
