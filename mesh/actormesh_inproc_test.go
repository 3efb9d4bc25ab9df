package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/stretchr/testify/require"
)

// gateActor answers pings, and holds its handler on a named gate of the
// test's until the test opens it: a handler that is busy for exactly as
// long as a test needs.
type gateActor struct{}

type (
	gatePing struct{ Reply core.PortRef[int] }
	gateQuit struct{}
	gateHold struct {
		Gate    string
		Entered core.PortRef[bool]
		Reply   core.PortRef[int] // answered once the gate opens, if set
	}
)

var gates sync.Map // name → chan struct{}

func gate(name string) chan struct{} {
	ch, _ := gates.LoadOrStore(name, make(chan struct{}))
	return ch.(chan struct{})
}

var gateSeq atomic.Int64

// newGate names a closed gate for one test run (go test -count runs a
// test again): a handler that reaches it late still finds it open.
func newGate(t *testing.T) string {
	return fmt.Sprintf("%s#%d", t.Name(), gateSeq.Add(1))
}

// openGate lets the handlers held on name go on.
func openGate(name string) { close(gate(name)) }

func (gateActor) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case gatePing:
		return m.Reply.Send(cx, 1)
	case gateQuit:
		cx.Stop("its work is done")
	case gateHold:
		if err := m.Entered.Send(cx, true); err != nil {
			return err
		}
		<-gate(m.Gate)
		if m.Reply != (core.PortRef[int]{}) {
			return m.Reply.Send(cx, 1)
		}
	}
	return nil
}

func init() {
	core.RegisterMessage[gatePing]("mesh.test.gatePing")
	core.RegisterMessage[gateHold]("mesh.test.gateHold")
	core.RegisterMessage[gateQuit]("mesh.test.gateQuit")
	core.RegisterActor("mesh.test.gateActor", func(struct{}) (*gateActor, error) { return &gateActor{}, nil })
}

// inProcMesh is a proc mesh of n procs of this process (with agents and
// comms, over unix sockets), without hosts.
func inProcMesh(t *testing.T, n int) (*castProcs, *ProcMesh) {
	t.Helper()
	cp := startCastProcs(t, n)
	pm := newProcMesh("p", nil, alloc.MustExtent("x", n), cp.inst)
	t.Cleanup(pm.closeMonitor)
	for i, p := range cp.procs {
		pm.procs[i] = procRef{id: p.ID(), agent: p.ID().ActorID(ProcAgentName, 0), name: p.ID().Name}
	}
	return cp, pm
}

// gateMesh spawns gate actors "g" on an in-process mesh of two procs.
func gateMesh(t *testing.T) (context.Context, *castProcs, *ProcMesh, *ActorMesh[*gateActor]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cp, pm := inProcMesh(t, 2)
	am, err := Spawn[*gateActor](ctx, cp.inst, pm, "g", struct{}{})
	require.NoError(t, err)
	return ctx, cp, pm, am
}

// hold parks rank's actor in its handler until the test closes the gate.
func hold(t *testing.T, ctx context.Context, inst *core.Instance, a core.ActorRef, name string) {
	t.Helper()
	port, rx := core.OpenOncePort[bool](inst)
	require.NoError(t, a.Send(inst, gateHold{Gate: name, Entered: port.Bind()}))
	_, err := rx.Recv(ctx)
	require.NoError(t, err, "the actor entered its handler")
}

// A Call whose caller stops ends at once, each rank's error saying why,
// rather than spinning until its deadline.
func TestCallEndsWhenCallerStops(t *testing.T) {
	ctx, cp, _, am := gateMesh(t)
	name := newGate(t)
	defer openGate(name)

	caller, h, err := cp.procs[0].Instance("caller")
	require.NoError(t, err)
	entered, enteredRx := core.OpenPort[bool](cp.inst)
	type result struct {
		vm  *ValueMesh[int]
		err error
	}
	done := make(chan result, 1)
	go func() {
		vm, err := Call(ctx, caller, am, func(r core.PortRef[int]) any {
			return gateHold{Gate: name, Entered: entered.Bind(), Reply: r}
		})
		done <- result{vm, err}
	}()
	_, err = enteredRx.Recv(ctx) // the cast is out: Call is gathering
	require.NoError(t, err)
	h.Stop("the caller goes away")
	select {
	case r := <-done:
		require.NoError(t, r.err)
		for rank, err := range r.vm.Errs {
			require.Error(t, err, "rank %d", rank)
			require.False(t, errors.Is(err, context.DeadlineExceeded), "rank %d: %v", rank, err)
		}
	case <-ctx.Done():
		t.Fatal("Call still running after its caller stopped")
	}
}

// A mesh stopped while an actor is still busy cannot be spawned again by
// its name until that actor has stopped: the new mesh would get the dying
// actor. A stopped mesh's handle stays stopped after a new spawn.
func TestRespawnAfterStop(t *testing.T) {
	ctx, cp, pm, old := gateMesh(t)
	name := newGate(t)
	hold(t, ctx, cp.inst, old.Values()[1], name)
	expired, cancelStop := context.WithCancel(ctx)
	cancelStop()
	require.Error(t, old.Stop(expired, cp.inst), "rank 1 is busy")

	_, err := Spawn[*gateActor](ctx, cp.inst, pm, "g", struct{}{})
	require.ErrorContains(t, err, "still stopping")

	openGate(name)
	var again *ActorMesh[*gateActor]
	for again == nil { // until rank 1's actor has stopped
		if again, err = Spawn[*gateActor](ctx, cp.inst, pm, "g", struct{}{}); err != nil {
			require.ErrorContains(t, err, "still stopping")
			require.NoError(t, ctx.Err())
		}
	}
	vm, err := Call(ctx, cp.inst, again, func(r core.PortRef[int]) any { return gatePing{Reply: r} })
	require.NoError(t, err)
	require.NoError(t, vm.Err())
	require.ErrorContains(t, old.Cast(cp.inst, gatePing{}), "stopped", "the old handle, after the new spawn")
}

// An actor that stops of its own accord is a supervision event for its
// mesh's owner, as a failure is: its rank is gone.
func TestActorStoppingItselfIsReported(t *testing.T) {
	ctx, cp, _, am := gateMesh(t)
	failures := am.Subscribe(cp.inst)
	defer failures.Close()
	require.NoError(t, am.Values()[1].Send(cp.inst, gateQuit{}))
	f, err := failures.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{1}, f.Ranks)
	require.Contains(t, f.Cause, "stopped on its own: its work is done")

	var me *MeshError
	require.ErrorAs(t, am.Cast(cp.inst, gatePing{}), &me)
	require.Equal(t, []int{1}, me.Ranks())
	require.NoError(t, am.Stop(ctx, cp.inst), "a requested stop is no event")
}
