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

func TestHostAgentProcLifecycle(t *testing.T) {
	t.Setenv(mesh.EnvTerminateTimeout, "300ms")
	f := newHostMesh(t, 1)
	host := f.hm.Hosts()[0]

	created := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any { return mesh.CreateProc{Name: "solo", Mesh: "m", Reply: r} })
	require.Equal(t, mesh.ProcReady, created.Status, created.Cause())
	assert.True(t, testutil.Alive(created.PID))
	assert.Equal(t, "solo", created.ProcID.Name)
	assert.Equal(t, created.ProcID.ActorID(mesh.ProcAgentName, 0), created.Agent)

	// Creating again by the same name is idempotent: same process.
	again := ask(t, f, host, func(r core.PortRef[mesh.ProcInfo]) any { return mesh.CreateProc{Name: "solo", Mesh: "m", Reply: r} })
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

	failures := am.Subscribe(f.inst)
	defer failures.Close()
	require.NoError(t, am.Values()[0].Send(f.inst, testactor.Fail{Msg: "broken"}))
	failure, err := failures.Recv(f.ctx)
	require.NoError(t, err)
	assert.Contains(t, failure.Cause, "broken")
	st = ask(t, f, agent, func(r core.PortRef[mesh.ActorStatus]) any { return mesh.GetActorStatus{Name: "a", Reply: r} })
	assert.Equal(t, core.StatusFailed, st.Status)
	assert.Contains(t, st.Err, "broken")

	code := ask(t, f, agent, func(r core.PortRef[int]) any { return mesh.StopAll{Reason: "test", Reply: r} })
	assert.Equal(t, 1, code, "a failed actor makes the proc exit with 1")
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
