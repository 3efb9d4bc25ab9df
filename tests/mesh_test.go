package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
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

type fixture struct {
	ctx  context.Context
	inst *core.Instance
	hm   *mesh.HostMesh
}

// newHostMesh allocates hosts bootstrap children as a host mesh and, when
// the test ends, shuts it down and checks that no process (orphans
// included) and no goroutine of the test is left.
func newHostMesh(t *testing.T, hosts int) *fixture {
	t.Helper()
	return newHostMeshWith(t, hosts, nil)
}

// newHostMeshWith is newHostMesh with options for the host mesh.
func newHostMeshWith(t *testing.T, hosts int, opts *mesh.HostMeshOptions) *fixture {
	t.Helper()
	checkLeaks(t) // first, so that it runs after the shutdown below
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	proc, err := core.DirectProc(transport.Unix.Any(), "root", nil)
	require.NoError(t, err)
	inst, _, err := proc.Instance("client")
	require.NoError(t, err)
	a, err := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}).Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", hosts)})
	require.NoError(t, err)
	hm, err := mesh.AllocateHostMesh(ctx, inst, a, "hosts", opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, hm.Shutdown(ctx, inst))
		proc.Shutdown(ctx)
	})
	return &fixture{ctx: ctx, inst: inst, hm: hm}
}

func (f *fixture) spawn(t *testing.T, procs, actors string, perHost int) (*mesh.ProcMesh, *mesh.ActorMesh[*testactor.TestActor]) {
	t.Helper()
	return f.spawnOn(t, f.hm, procs, actors, perHost)
}

// spawnOn is spawn on another host mesh of the same hosts.
func (f *fixture) spawnOn(t *testing.T, hm *mesh.HostMesh, procs, actors string, perHost int) (*mesh.ProcMesh, *mesh.ActorMesh[*testactor.TestActor]) {
	t.Helper()
	pm, err := hm.Spawn(f.ctx, f.inst, procs, alloc.MustExtent("gpus", perHost))
	require.NoError(t, err)
	am, err := mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, actors, struct{}{})
	require.NoError(t, err)
	return pm, am
}

// subscribe is am.Subscribe, closed when the test ends.
func (f *fixture) subscribe(t *testing.T, am *mesh.ActorMesh[*testactor.TestActor]) *core.PortReceiver[mesh.MeshFailure] {
	rx := am.Subscribe(f.inst)
	t.Cleanup(rx.Close)
	return rx
}

func getIDs(t *testing.T, f *fixture, am *mesh.ActorMesh[*testactor.TestActor]) *mesh.ValueMesh[core.ActorID] {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	vm, err := mesh.Call(ctx, f.inst, am, func(r core.PortRef[core.ActorID]) any { return testactor.GetActorID{Reply: r} })
	require.NoError(t, err)
	return vm
}

func TestMeshFourHostsTwoProcsEach(t *testing.T) {
	f := newHostMesh(t, 4)
	pm, am := f.spawn(t, "p", "a", 2)
	assert.Equal(t, "{replicas: 4, gpus: 2}", pm.Extent().String())

	// 8 procs, each its own OS process, besides the 4 hosts.
	pids := pm.PIDs()
	require.Len(t, pids, 8)
	for _, pid := range pids {
		assert.True(t, testutil.Alive(pid), "proc pid %d", pid)
	}
	assert.Len(t, testutil.Descendants(os.Getpid()), 12)

	vm := getIDs(t, f, am)
	require.NoError(t, vm.Err())
	want := make([]core.ActorID, 0, 8)
	for _, ref := range am.Values() {
		want = append(want, ref.ID)
	}
	assert.Equal(t, want, vm.Values)
	distinct := map[core.ActorID]bool{}
	for _, id := range vm.Values {
		distinct[id] = true
	}
	assert.Len(t, distinct, 8, "ids are distinct: %v", vm.Values)

	// A slice's casts reach exactly the slice, which numbers its own ranks.
	slice, err := am.Slice("replicas", 1, 3)
	require.NoError(t, err)
	require.Equal(t, "{replicas: 2, gpus: 2}", slice.Extent().String())
	port, rx := core.OpenPort[testactor.CastInfo](f.inst)
	require.NoError(t, slice.Cast(f.inst, testactor.GetCastInfo{Reply: port.Bind()}))
	got := map[core.ActorID]testactor.CastInfo{}
	for range 4 {
		info, err := rx.Recv(f.ctx)
		require.NoError(t, err)
		got[info.Self] = info
	}
	for i, ref := range slice.Values() {
		info, ok := got[ref.ID]
		require.True(t, ok, "slice rank %d not reached", i)
		assert.Equal(t, i, info.Rank)
		// The point is in the slice's own extent, not the whole mesh's.
		assert.Equal(t, fmt.Sprintf("replicas=%d/2,gpus=%d/2", i/2, i%2), info.Point, "slice rank %d", i)
		assert.Equal(t, f.inst.ID(), info.Sender, "the original sender survives the cast tree")
	}
	assert.Equal(t, []core.ActorID{want[2], want[3], want[4], want[5]}, []core.ActorID{slice.Values()[0].ID, slice.Values()[1].ID, slice.Values()[2].ID, slice.Values()[3].ID})
	// Nothing else answered: a round trip to everyone, then check the queue.
	getIDs(t, f, am)
	_, ok, err := rx.TryRecv()
	require.NoError(t, err)
	assert.False(t, ok, "a rank outside the slice answered")

	// A reduction over the whole mesh: sum of 10+rank over 8 ranks.
	sum, srx := core.OpenAccumPort(f.inst, core.Sum[int]())
	require.NoError(t, am.Cast(f.inst, testactor.Add{N: 10, Reply: sum.Bind()}))
	total, n, err := srx.Wait(f.ctx, 8)
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	assert.Equal(t, 80+28, total)
}

func TestMeshCastOrder(t *testing.T) {
	f := newHostMesh(t, 2)
	_, am := f.spawn(t, "p", "a", 2)
	const n = 1000
	for i := range n {
		require.NoError(t, am.Cast(f.inst, testactor.Record{Seq: i}))
	}
	vm, err := mesh.Call(f.ctx, f.inst, am, func(r core.PortRef[testactor.Records]) any { return testactor.GetRecords{Reply: r} })
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	for rank, rec := range vm.Values {
		require.Len(t, rec.Seqs, n, "rank %d", rank)
		for i, s := range rec.Seqs {
			require.Equal(t, i, s, "rank %d: message %d out of order", rank, i)
		}
	}
}

// Casts to the whole mesh and to slices of it, interleaved, still reach
// every actor in the order they were sent: every view shares the tree.
func TestMeshCastOrderAcrossSlices(t *testing.T) {
	f := newHostMesh(t, 2)
	_, am := f.spawn(t, "p", "a", 4)
	views := []*mesh.ActorMesh[*testactor.TestActor]{am}
	for _, r := range [][2]int{{0, 1}, {1, 2}} {
		v, err := am.Slice("replicas", r[0], r[1])
		require.NoError(t, err)
		views = append(views, v)
	}
	v, err := am.Slice("gpus", 1, 3)
	require.NoError(t, err)
	views = append(views, v)
	const n = 600
	for i := range n {
		require.NoError(t, views[i%len(views)].Cast(f.inst, testactor.Record{Seq: i}))
	}
	vm, err := mesh.Call(f.ctx, f.inst, am, func(r core.PortRef[testactor.Records]) any { return testactor.GetRecords{Reply: r} })
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	for rank, rec := range vm.Values {
		require.NotEmpty(t, rec.Seqs, "rank %d", rank)
		for i := 1; i < len(rec.Seqs); i++ {
			require.Less(t, rec.Seqs[i-1], rec.Seqs[i], "rank %d: out of order", rank)
		}
	}
	// Rank 0 is in the whole mesh, the first replica slice and not the
	// gpus slice: it saw exactly the casts to views 0 and 1.
	var want []int
	for i := range n {
		if i%len(views) <= 1 {
			want = append(want, i)
		}
	}
	require.Equal(t, want, vm.Values[0].Seqs)
}

func TestMeshActorPanic(t *testing.T) {
	f := newHostMesh(t, 2)
	_, am := f.spawn(t, "p", "a", 2)
	failures := f.subscribe(t, am)

	target := am.Values()[3]
	require.NoError(t, target.Send(f.inst, testactor.Panic{Msg: "for testing"}))
	failure, err := failures.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, "a", failure.Mesh)
	assert.Equal(t, []int{3}, failure.Ranks)
	assert.Contains(t, failure.Cause, "panic")
	assert.Contains(t, failure.Cause, "for testing")
	require.NotNil(t, failure.Event)
	assert.Contains(t, failure.Event.Stack, "testactor.(*TestActor).Handle")

	err = am.Cast(f.inst, testactor.Record{Seq: 1})
	var me *mesh.MeshError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []int{3}, me.Ranks())
	assert.Contains(t, err.Error(), "for testing")

	// The rest keeps working: a slice without the failed rank, and a new
	// actor mesh on the same procs.
	healthy, err := am.Slice("replicas", 0, 1)
	require.NoError(t, err)
	vm := getIDs(t, f, healthy)
	require.NoError(t, vm.Err())
	vm2 := getIDs(t, f, spawnOn(t, f, am, "b"))
	require.NoError(t, vm2.Err())
}

func spawnOn(t *testing.T, f *fixture, am *mesh.ActorMesh[*testactor.TestActor], name string) *mesh.ActorMesh[*testactor.TestActor] {
	t.Helper()
	pm := am.ProcMesh()
	b, err := mesh.Spawn[*testactor.TestActor](f.ctx, f.inst, pm, name, struct{}{})
	require.NoError(t, err)
	return b
}

func TestMeshProcKilled(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 2)
	failures := f.subscribe(t, am)

	victim := pm.PIDs()[2]
	require.NoError(t, syscall.Kill(victim, syscall.SIGKILL))
	failure, err := failures.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, failure.Ranks)
	assert.Contains(t, failure.Cause, "killed by signal 9")
	require.NotNil(t, failure.Proc)
	assert.Equal(t, victim, failure.Proc.PID)

	err = am.Cast(f.inst, testactor.Record{Seq: 1})
	var me *mesh.MeshError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []int{2}, me.Ranks())

	// The other procs still answer, through a tree that avoids the dead one.
	ok, err := am.Slice("replicas", 0, 1)
	require.NoError(t, err)
	require.NoError(t, getIDs(t, f, ok).Err())

}

// With a root of the tree and an inner node dead, a cast to the live ranks
// goes around them: the caster sends to a dead root's live descendants and
// a dead node's parent to its children.
func TestMeshCastAroundDeadTreeNodes(t *testing.T) {
	// Fan-out 2 over 8 procs: the caster sends to 0 and 1, node 0 forwards
	// to 2 and 3, node 1 to 4 and 5, node 2 to 6 and 7.
	t.Setenv(mesh.EnvCastFanout, "2")
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 4)
	failures := f.subscribe(t, am)
	pids := pm.PIDs()
	for _, victim := range []int{pids[0], pids[2]} {
		require.NoError(t, syscall.Kill(victim, syscall.SIGKILL))
	}
	dead := failedRanks(t, f, failures, 2)
	assert.Contains(t, dead, 0)
	assert.Contains(t, dead, 2)

	// Host 1's procs, 4 to 7: 6 and 7 now straight from the caster, 4 and
	// 5 through node 1, which is outside the view.
	live, err := am.Slice("replicas", 1, 2)
	require.NoError(t, err)
	var want []core.ActorID
	for _, ref := range am.Values()[4:] {
		want = append(want, ref.ID)
	}
	for range 3 {
		vm := getIDs(t, f, live)
		require.NoError(t, vm.Err())
		assert.Equal(t, want, vm.Values)
	}
}

func TestMeshStopKeepsHosts(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 2)
	require.NoError(t, getIDs(t, f, am).Err())
	first := pm.PIDs()
	require.NoError(t, f.hm.Stop(f.ctx, f.inst))
	for _, pid := range first {
		assert.False(t, testutil.Alive(pid), "proc %d survived Stop", pid)
	}
	assert.Len(t, testutil.Descendants(os.Getpid()), 2, "the hosts stay up")

	// The same hosts take a new proc mesh, reached through a new host mesh
	// attached to them too.
	again, err := mesh.AttachHostMesh("again", f.hm.Extent(), f.hm.Hosts())
	require.NoError(t, err)
	_, am2 := f.spawnOn(t, again, "q", "a", 2)
	require.NoError(t, getIDs(t, f, am2).Err())
	require.NoError(t, again.Stop(f.ctx, f.inst))
}

// Killing a host takes its procs down: with the parent-death signal at
// once, without it once their heartbeat to the host fails. Either way they
// must really die, not merely be reported dead, and none may survive as
// an orphan reparented out of our process tree.
func TestMeshHostKilled(t *testing.T) {
	for _, pdeathsig := range []string{"true", "false"} {
		t.Run("pdeathsig="+pdeathsig, func(t *testing.T) {
			t.Setenv(alloc.EnvEnablePdeathsig, pdeathsig)
			testHostKilled(t)
		})
	}
}

func testHostKilled(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 2)
	failures := f.subscribe(t, am)

	// Host 1 is the parent of procs 2 and 3, which carry this run's marker:
	// the check for orphans below can see them once they leave our tree.
	victims := pm.PIDs()[2:4]
	host := hostPID(t, victims[0])
	require.Equal(t, host, hostPID(t, victims[1]))
	for _, pid := range victims {
		m, ok := testutil.Marker(pid)
		require.True(t, ok, "reading the environment of proc %d", pid)
		require.Equal(t, os.Getenv(testutil.EnvRunMarker), m, "proc %d inherited the run marker", pid)
	}
	require.NoError(t, syscall.Kill(host, syscall.SIGKILL))
	failed := failedRanks(t, f, failures, 2)
	assert.Contains(t, failed, 2)
	assert.Contains(t, failed, 3)
	err := am.Cast(f.inst, testactor.Record{Seq: 1})
	var me *mesh.MeshError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []int{2, 3}, me.Ranks())

	// The event above may come from the host's death alone; the procs
	// themselves must follow (heartbeat: interval 1s, timeout 5s).
	assert.Empty(t, testutil.WaitDead(victims, 30*time.Second), "procs of the killed host still alive")
	assert.Empty(t, orphans(), "marked processes outside our process tree")

	// The ranks on the live host keep working; shutdown (in the fixture's
	// cleanup) skips the dead host and still leaves nothing behind.
	healthy, err := am.Slice("replicas", 0, 1)
	require.NoError(t, err)
	require.NoError(t, getIDs(t, f, healthy).Err())

	// A spawn on the hosts fails at once, naming the dead host; stopping
	// the mesh waits for no answer from it.
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	_, err = f.hm.Spawn(ctx, f.inst, "q", alloc.MustExtent("gpus", 1))
	require.ErrorContains(t, err, "host 1 died")
	require.NoError(t, f.hm.Stop(ctx, f.inst))
	assert.Empty(t, testutil.WaitDead(pm.PIDs(), 20*time.Second), "procs of the stopped mesh")
}

// failedRanks receives failure events until n ranks have failed, and
// returns each failed rank's cause.
func failedRanks(t *testing.T, f *fixture, failures *core.PortReceiver[mesh.MeshFailure], n int) map[int]string {
	t.Helper()
	failed := map[int]string{}
	for len(failed) < n {
		failure, err := failures.Recv(f.ctx)
		require.NoError(t, err)
		for _, r := range failure.Ranks {
			failed[r] = failure.Cause
		}
	}
	return failed
}

// orphans are the live processes of this run that left our process tree.
func orphans() []testutil.Proc {
	tree := map[int]bool{}
	for _, p := range testutil.Descendants(os.Getpid()) {
		tree[p.PID] = true
	}
	var out []testutil.Proc
	for _, p := range testutil.Marked() {
		if !tree[p.PID] {
			out = append(out, p)
		}
	}
	return out
}

// hostPID is the parent of a proc's process: the host that launched it.
func hostPID(t *testing.T, procPID int) int {
	t.Helper()
	p, err := testutil.ReadProc(procPID)
	require.NoError(t, err)
	return p.PPid
}

func gomaxprocs(t *testing.T, f *fixture, am *mesh.ActorMesh[*testactor.TestActor]) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Second)
	defer cancel()
	vm, err := mesh.Call(ctx, f.inst, am, func(r core.PortRef[int]) any { return testactor.GetGOMAXPROCS{Reply: r} })
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	return vm.Values
}

// The procs of a mesh share their host's CPUs: each gets GOMAXPROCS =
// the host's CPUs / procs per host, at least 1.
func TestMeshProcsShareTheHostsCPUs(t *testing.T) {
	f := newHostMesh(t, 1)
	_, alone := f.spawn(t, "one", "a", 1)
	cpus := gomaxprocs(t, f, alone)[0] // a proc alone has all the host's CPUs
	require.NoError(t, f.hm.Stop(f.ctx, f.inst))
	again, err := mesh.AttachHostMesh("again", f.hm.Extent(), f.hm.Hosts())
	require.NoError(t, err)
	_, pair := f.spawnOn(t, again, "two", "a", 2)
	assert.Equal(t, []int{max(1, cpus/2), max(1, cpus/2)}, gomaxprocs(t, f, pair))
	require.NoError(t, again.Stop(f.ctx, f.inst))
}

// GOMAXPROCS set in the environment is left alone.
func TestMeshProcsKeepAnExplicitGOMAXPROCS(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	f := newHostMesh(t, 1)
	_, am := f.spawn(t, "p", "a", 2)
	assert.Equal(t, []int{3, 3}, gomaxprocs(t, f, am))
}

// A proc that exits on its own with a code: the owner's event carries the
// code and the last lines the proc wrote to stderr, which is often all
// that tells why a process died.
func TestMeshProcExitReportsStderr(t *testing.T) {
	f := newHostMesh(t, 1)
	pm, am := f.spawn(t, "p", "a", 2)
	failures := f.subscribe(t, am)

	victim := pm.PIDs()[1]
	last := []string{"fatal: the disk is on fire", "giving up with code 3"}
	require.NoError(t, am.Values()[1].Send(f.inst, testactor.Exit{Code: 3, Stderr: last[0] + "\n" + last[1] + "\n"}))
	failure, err := failures.Recv(f.ctx)
	require.NoError(t, err)
	assert.Equal(t, "a", failure.Mesh)
	assert.Equal(t, []int{1}, failure.Ranks)
	assert.Contains(t, failure.Cause, "exited with code 3")
	assert.Contains(t, failure.Cause, last[0]+"\n  "+last[1], "the cause ends with the proc's last lines, in order")
	require.NotNil(t, failure.Proc)
	assert.Equal(t, victim, failure.Proc.PID)
	assert.Equal(t, mesh.ProcStopped, failure.Proc.Status)
	assert.Equal(t, 3, failure.Proc.ExitCode)
	require.GreaterOrEqual(t, len(failure.Proc.StderrTail), 2)
	assert.Equal(t, last, failure.Proc.StderrTail[len(failure.Proc.StderrTail)-2:])

	err = am.Cast(f.inst, testactor.Record{Seq: 1})
	var me *mesh.MeshError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, []int{1}, me.Ranks())
	assert.Contains(t, err.Error(), "exited with code 3")
	assert.False(t, testutil.Alive(victim))
}

// A gather in which one rank's proc is SIGKILLed after the cast reached
// it: that rank's slot holds the failure, the others hold their values,
// and the gather ends on the event rather than at its deadline.
func TestMeshCallPerRankError(t *testing.T) {
	f := newHostMesh(t, 2)
	pm, am := f.spawn(t, "p", "a", 2)
	const victim = 2
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	vm, err := mesh.Call(ctx, f.inst, am, func(r core.PortRef[core.ActorID]) any {
		return testactor.Raise{Rank: victim, Signal: int(syscall.SIGKILL), Reply: r}
	})
	require.NoError(t, err, "the cast went out before anything failed")
	require.NoError(t, ctx.Err(), "the gather waited for its deadline")
	for rank, ref := range am.Values() {
		if rank == victim {
			continue
		}
		assert.NoError(t, vm.Errs[rank], "rank %d", rank)
		assert.Equal(t, ref.ID, vm.Values[rank], "rank %d", rank)
	}
	var mf mesh.MeshFailure
	require.True(t, errors.As(vm.Errs[victim], &mf), "rank %d: %v, want a MeshFailure", victim, vm.Errs[victim])
	assert.Equal(t, []int{victim}, mf.Ranks)
	assert.Contains(t, mf.Cause, "killed by signal 9")
	require.NotNil(t, mf.Proc)
	assert.Equal(t, pm.PIDs()[victim], mf.Proc.PID)
	assert.Equal(t, core.ActorID{}, vm.Values[victim], "no value for the failed rank")
	require.ErrorContains(t, vm.Err(), fmt.Sprintf("rank %d", victim))
}
