package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostPIDs are this test process's children: the hosts of a fixture
// that has not spawned procs on them yet.
func hostPIDs(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, p := range testutil.Descendants(os.Getpid()) {
		if p.PPid == os.Getpid() {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// goroutinesIn counts this process's goroutines that are in fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), fn+"(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// After Stop, the hosts take a proc mesh of the same name again; while
// it runs, spawning the name again returns the same mesh, and an actor
// mesh's name is refused.
func TestLifecycleRespawnSameNameAfterStop(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 2)
	require.NoError(t, getIDs(t, f, am).Err())
	first := pm.PIDs()

	same, err := f.hm.Spawn(f.ctx, f.inst, "p", alloc.MustExtent("gpus", 2))
	require.NoError(t, err)
	assert.Same(t, pm, same, "a running mesh is spawned once")
	_, err = f.hm.Spawn(f.ctx, f.inst, "p", alloc.MustExtent("gpus", 1))
	require.ErrorContains(t, err, "running with extent")
	_, err = mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, "a", struct{}{})
	require.ErrorContains(t, err, `an actor mesh "a" is running`)
	require.NoError(t, getIDs(t, f, am).Err(), "the running actor mesh, after the refused spawn")

	require.NoError(t, f.hm.Stop(f.ctx, f.inst))
	pm2, am2 := f.spawn(t, "p", "a", 2)
	require.NoError(t, getIDs(t, f, am2).Err())
	for i, pid := range pm2.PIDs() {
		assert.NotEqual(t, first[i], pid, "rank %d: a new process", i)
		assert.True(t, testutil.Alive(pid), "rank %d", i)
	}
}

// ShutdownHost makes an allocated host exit once drained, whichever mesh
// sends it: here one attached to the hosts, which owns no allocation.
// The allocating mesh's Shutdown (in the fixture) still succeeds.
func TestLifecycleShutdownHostExits(t *testing.T) {
	f := newHostMesh(t, 2)
	hosts := hostPIDs(t)
	require.Len(t, hosts, 2)

	attached, err := mesh.AttachHostMesh("attached", f.hm.Extent(), f.hm.Hosts())
	require.NoError(t, err)
	pm, err := attached.Spawn(f.ctx, f.inst, "q", alloc.MustExtent("gpus", 1))
	require.NoError(t, err)
	procs := pm.PIDs()
	require.NoError(t, attached.Shutdown(f.ctx, f.inst))
	assert.Empty(t, testutil.WaitDead(procs, 20*time.Second), "procs survived the drain")
	assert.Empty(t, testutil.WaitDead(hosts, 20*time.Second), "hosts still running after ShutdownHost")
}

// A proc that never calls back is killed at the readiness deadline, and
// its creator gets an error then, not at its own deadline.
func TestLifecycleProcReadyTimeout(t *testing.T) {
	t.Setenv(mesh.EnvSpawnReadyTimeout, "1s")
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	f := newHostMeshWith(t, 1, &mesh.HostMeshOptions{Command: alloc.BootstrapCommand{Program: sleep, Args: []string{"600"}}})

	created := createProc(t, f, f.hm.Hosts()[0], "silent", "m")
	assert.Equal(t, mesh.ProcFailed, created.Status, created.Cause())
	assert.Contains(t, created.Reason, "not ready within 1s")
	assert.NotZero(t, created.PID)
	assert.False(t, testutil.Alive(created.PID), "the proc is killed before the failure is reported")

	ctx, cancel := context.WithTimeout(f.ctx, 25*time.Second)
	defer cancel()
	_, err = f.hm.Spawn(ctx, f.inst, "p", alloc.Unity())
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "not ready within")
}

// Spawning actors on a proc mesh with a dead proc fails at once, naming
// it; so does a Call to a mesh with a rank known dead.
func TestLifecycleSpawnOnDeadProcFailsFast(t *testing.T) {
	f := newHostMesh(t, 1)
	pm, am := f.spawn(t, "p", "a", 2)
	failures := f.subscribe(t, am)
	require.NoError(t, syscall.Kill(pm.PIDs()[1], syscall.SIGKILL))
	_, err := failures.Recv(f.ctx)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	_, err = mesh.Spawn[*testactor.TestActor](ctx, f.inst, pm, "b", struct{}{})
	var me *mesh.MeshError
	require.ErrorAs(t, err, &me, "got %v", err)
	assert.Equal(t, "p", me.Mesh)
	assert.Equal(t, []int{1}, me.Ranks())
	assert.Contains(t, err.Error(), "killed by signal 9")

	_, err = mesh.Call(context.Background(), f.inst, am, func(r core.PortRef[core.ActorID]) any { return testactor.GetActorID{Reply: r} })
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []int{1}, me.Ranks())
}

// A Call without a deadline gets one: a silent rank ends with an error.
func TestLifecycleCallDefaultDeadline(t *testing.T) {
	t.Setenv(mesh.EnvCallTimeout, "1s")
	t.Setenv(mesh.EnvTerminateTimeout, "300ms") // the silent actor holds up the drain
	f := newHostMesh(t, 1)
	_, am := f.spawn(t, "p", "a", 2)
	port, rx := core.OpenPort[bool](f.inst)
	defer rx.Close()
	require.NoError(t, am.Values()[1].Send(f.inst, testactor.Sleep{D: time.Minute, Reply: port.Bind()}))

	type result struct {
		vm  *mesh.ValueMesh[core.ActorID]
		err error
	}
	done := make(chan result, 1)
	go func() {
		vm, err := mesh.Call(context.Background(), f.inst, am, func(r core.PortRef[core.ActorID]) any { return testactor.GetActorID{Reply: r} })
		done <- result{vm, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Call without a deadline still waiting for a silent rank after 20s")
	}
	require.NoError(t, res.err)
	assert.NoError(t, res.vm.Errs[0])
	assert.Equal(t, am.Values()[0].ID, res.vm.Values[0])
	assert.ErrorIs(t, res.vm.Errs[1], context.DeadlineExceeded)
}

// A slice's subscribers hear only of the slice's ranks, numbered as the
// slice numbers them; Failure and Cast number them the same way.
func TestLifecycleSubscribeSlice(t *testing.T) {
	f := newHostMesh(t, 2)
	_, am := f.spawn(t, "p", "a", 2)
	slice, err := am.Slice("replicas", 1, 2) // mesh ranks 2 and 3
	require.NoError(t, err)
	whole := f.subscribe(t, am)
	part := f.subscribe(t, slice)

	for _, rank := range []int{0, 3} {
		require.NoError(t, am.Values()[rank].Send(f.inst, testactor.Panic{Msg: "for testing"}))
		failure, err := whole.Recv(f.ctx)
		require.NoError(t, err)
		require.Equal(t, []int{rank}, failure.Ranks)
	}
	// Both failures were published before the whole mesh's subscriber got
	// the second one: whatever the slice's got is queued by now.
	failure, err := part.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, failure.Ranks, "mesh rank 3 is the slice's rank 1")
	_, more, err := part.TryRecv()
	require.NoError(t, err)
	assert.False(t, more, "the slice's subscriber heard of a rank outside the slice")

	late := f.subscribe(t, slice)
	failure, err = late.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, failure.Ranks)
	_, more, err = late.TryRecv()
	require.NoError(t, err)
	assert.False(t, more)

	_, bad := slice.Failure(0)
	assert.False(t, bad)
	f1, bad := slice.Failure(1)
	require.True(t, bad)
	assert.Equal(t, []int{1}, f1.Ranks)
	var me *mesh.MeshError
	require.ErrorAs(t, slice.Cast(f.inst, testactor.Record{Seq: 1}), &me)
	assert.Equal(t, []int{1}, me.Ranks())
}

// A proc that failed to launch is reported to whoever asked for it, and
// not again by every later drain.
func TestLifecycleLaunchFailureReportedOnce(t *testing.T) {
	f := newHostMeshWith(t, 1, &mesh.HostMeshOptions{Command: alloc.BootstrapCommand{Program: "/nonexistent/actormesh-proc"}})
	_, err := f.hm.Spawn(f.ctx, f.inst, "p", alloc.Unity())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "launching proc p_0")

	host := f.hm.Hosts()[0]
	for range 2 {
		res := ask(t, f, host, func(r core.PortRef[mesh.DrainResult]) any { return mesh.DrainHost{Reply: r} })
		assert.Empty(t, res.Failed, "an already reported launch failure fails the drain")
	}
	list := ask(t, f, host, func(r core.PortRef[[]mesh.ProcInfo]) any { return mesh.ListProcs{Reply: r} })
	assert.Empty(t, list)
	// The fixture's Shutdown must succeed too.
}

// A spawn that fails on some ranks stops the actors it started on the
// others before it returns.
func TestLifecyclePartialSpawnStopsStartedActors(t *testing.T) {
	f := newHostMesh(t, 1)
	pm, err := f.hm.Spawn(f.ctx, f.inst, "p", alloc.MustExtent("gpus", 2))
	require.NoError(t, err)
	agents := pm.Agents()
	// On rank 1, "x" is already an actor of another type, so the mesh
	// spawn below fails there and only there.
	other := ask(t, f, agents[1], func(r core.PortRef[mesh.SpawnResult]) any {
		return mesh.SpawnActor{Name: "x", Type: "mesh.CommActor", Reply: r}
	})
	require.Empty(t, other.Err)

	_, err = mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, "x", struct{}{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rank 1")
	assert.Contains(t, err.Error(), "already running as a mesh.CommActor")
	assert.NotContains(t, err.Error(), "rank 0")

	st := ask(t, f, agents[0], func(r core.PortRef[mesh.ActorStatus]) any { return mesh.GetActorStatus{Name: "x", Reply: r} })
	require.True(t, st.Exists)
	assert.True(t, st.Status.Terminal(), "rank 0's actor is still %v", st.Status)
	require.NoError(t, pm.Stop(f.ctx, f.inst))
}

// A proc mesh spawn that ends with the caller's ctx stops what it began:
// no proc, no monitor goroutine; the name is free for the next spawn.
func TestLifecycleSpawnCanceledLeavesNothing(t *testing.T) {
	f := newHostMesh(t, 1)
	const monitor = "github.com/actormesh/actormesh/mesh.(*ProcMesh).monitor"
	before := goroutinesIn(monitor)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	_, err := f.hm.Spawn(ctx, f.inst, "p", alloc.MustExtent("gpus", 2))
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before, goroutinesIn(monitor), "monitor goroutine left running")
	assert.Len(t, testutil.Descendants(os.Getpid()), 1, "only the host remains")

	_, am := f.spawn(t, "p", "a", 2)
	require.NoError(t, getIDs(t, f, am).Err())
}

// A stopped actor mesh's name is free again on the same procs.
func TestLifecycleRespawnActorMeshAfterStop(t *testing.T) {
	f := newHostMesh(t, 1)
	pm, am := f.spawn(t, "p", "a", 2)
	require.NoError(t, getIDs(t, f, am).Err())
	require.NoError(t, am.Stop(f.ctx, f.inst))
	require.Error(t, am.Cast(f.inst, testactor.Record{Seq: 1}), "the stopped mesh takes no casts")

	again, err := mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, "a", struct{}{})
	require.NoError(t, err)
	vm := getIDs(t, f, again)
	require.NoError(t, vm.Err())
	for rank, ref := range again.Values() {
		assert.Equal(t, ref.ID, vm.Values[rank], "rank %d", rank)
	}
}

// A standalone host (host mode) drains on ShutdownHost and takes no more
// procs. Started with exit_on_shutdown it then exits; without, its
// process stays up, and its agent still answers, until its parent ends it.
func TestLifecycleStandaloneHost(t *testing.T) {
	for _, exit := range []bool{false, true} {
		t.Run(fmt.Sprintf("exit_on_shutdown=%v", exit), func(t *testing.T) {
			checkLeaks(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			mode, err := alloc.BootstrapMode{Host: &alloc.HostMode{ExitOnShutdown: exit}}.Encode()
			require.NoError(t, err)
			cmd := exec.Command(bootstrapBin)
			cmd.Env = append(os.Environ(), alloc.EnvBootstrapMode+"="+mode)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			// The host's first line is its agent's id; EOF if it failed.
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			host, err := core.ParseActorID(strings.TrimSpace(line))
			require.NoError(t, err)

			proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
			require.NoError(t, err)
			t.Cleanup(func() { proc.Shutdown(ctx) })
			inst, _, err := proc.Instance("client")
			require.NoError(t, err)
			f := &fixture{ctx: ctx, inst: inst}
			shutdown := func() {
				drained := ask(t, f, host, func(r core.PortRef[mesh.DrainResult]) any { return mesh.ShutdownHost{Reply: r} })
				assert.Equal(t, mesh.DrainResult{Stopped: 1}, drained)
			}

			first := readyProc(t, f, host, "p0", "m")
			shutdown()
			assert.False(t, testutil.Alive(first.PID), "the drain stopped the proc")
			if exit {
				select {
				case err := <-exited:
					require.NoError(t, err, "the host's exit")
				case <-ctx.Done():
					t.Fatal("the host did not exit after ShutdownHost")
				}
				exited <- nil // for the cleanup
				return
			}
			require.True(t, ask(t, f, host, func(r core.PortRef[bool]) any { return mesh.HostPing{Reply: r} }), "the host answers after its drain")
			refused := createProc(t, f, host, "p1", "m")
			assert.Equal(t, mesh.ProcFailed, refused.Status)
			assert.Contains(t, refused.Reason, "host is shut down")
			select {
			case err := <-exited:
				t.Fatalf("the host exited (%v) without exit_on_shutdown", err)
			default:
			}
		})
	}
}

// A Shutdown that runs out of time can be called again: the second waits
// for what the first began, and then no process of the mesh is left.
func TestLifecycleShutdownAgainAfterTimeout(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, _ := f.spawn(t, "p", "a", 1)
	expired, cancel := context.WithCancel(f.ctx)
	cancel()
	require.Error(t, f.hm.Shutdown(expired, f.inst))
	require.NoError(t, f.hm.Shutdown(f.ctx, f.inst))
	assert.Empty(t, testutil.WaitDead(pm.PIDs(), 20*time.Second), "procs")
	assert.Empty(t, testutil.Descendants(os.Getpid()), "processes after the second Shutdown")
}
