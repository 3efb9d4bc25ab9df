package core

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/internal/testwait"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

// Messages used by the test actors. They are registered so that the same
// actors work across processes (see remote_test.go).
type (
	Ping struct {
		N     int
		Reply PortRef[int]
	}
	Echo struct {
		Data  []byte
		Reply PortRef[[]byte]
	}
	Record struct{ N int }
	Report struct{ Reply PortRef[[]int] }
	Fail   struct{ Msg string }
	Panic  struct{ Msg string }
	Block  struct {
		Started PortRef[bool]
		Release string // unused on the wire; local tests close a channel
	}
	SpawnChild struct{ Reply PortRef[ActorID] }
	Whoami     struct{ Reply PortRef[ActorID] }
	SendTo     struct {
		Dest ActorID
		Msg  Record
	}
)

func init() {
	RegisterMessage[Ping]("coretest.Ping")
	RegisterMessage[Echo]("coretest.Echo")
	RegisterMessage[Record]("coretest.Record")
	RegisterMessage[Report]("coretest.Report")
	RegisterMessage[Fail]("coretest.Fail")
	RegisterMessage[Panic]("coretest.Panic")
	RegisterMessage[SpawnChild]("coretest.SpawnChild")
	RegisterMessage[Whoami]("coretest.Whoami")
	RegisterMessage[SendTo]("coretest.SendTo")
	RegisterActor("coretest.Recorder", func(p RecorderParams) (*recorder, error) {
		if p.Reject {
			return nil, errors.New("rejected by params")
		}
		return &recorder{offset: p.Offset}, nil
	})
}

type RecorderParams struct {
	Offset int
	Reject bool
}

// recorder is the general-purpose test actor.
type recorder struct {
	offset  int
	seen    []int
	inited  bool
	block   chan struct{}
	cleaned chan error
	undeliv chan Undeliverable
	superv  chan SupervisionEvent
	absorb  bool
}

func (r *recorder) Init(cx *Context) error {
	r.inited = true
	return nil
}

func (r *recorder) Handle(cx *Context, msg any) error {
	if !r.inited {
		return errors.New("handled a message before Init")
	}
	switch m := msg.(type) {
	case Ping:
		return m.Reply.Send(cx, m.N+r.offset)
	case Echo:
		return m.Reply.Send(cx, m.Data)
	case Record:
		r.seen = append(r.seen, m.N)
	case Report:
		return m.Reply.Send(cx, append([]int(nil), r.seen...))
	case Fail:
		return errors.New(m.Msg)
	case Panic:
		panic(m.Msg)
	case Block:
		if err := m.Started.Send(cx, true); err != nil {
			return err
		}
		<-r.block
	case SpawnChild:
		h, err := cx.Spawn(&recorder{block: r.block, superv: r.superv, absorb: r.absorb})
		if err != nil {
			return err
		}
		return m.Reply.Send(cx, h.ID())
	case Whoami:
		return m.Reply.Send(cx, cx.ID())
	case SendTo:
		return ActorRef{ID: m.Dest}.Send(cx, m.Msg)
	default:
		return fmt.Errorf("unexpected message %T", msg)
	}
	return nil
}

func (r *recorder) Cleanup(cx *Context, err error) error {
	if r.cleaned != nil {
		r.cleaned <- err
	}
	return nil
}

func (r *recorder) HandleUndeliverable(cx *Context, u Undeliverable) error {
	if r.undeliv == nil {
		return fmt.Errorf("unexpected undeliverable: %s", u.Reason)
	}
	r.undeliv <- u
	return nil
}

func (r *recorder) HandleSupervision(cx *Context, ev SupervisionEvent) (bool, error) {
	if r.superv != nil {
		r.superv <- ev
	}
	return r.absorb || !ev.Failed(), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newTestProc serves a proc on a fresh abstract unix address whose root
// supervision events go to the returned channel; it is shut down (and
// checked for leaked goroutines) when the test ends.
func newTestProc(t *testing.T, opts *ProcOptions) (*Proc, chan SupervisionEvent) {
	t.Helper()
	events := make(chan SupervisionEvent, 1000)
	o := ProcOptions{}
	if opts != nil {
		o = *opts
	}
	o.Supervisor = func(ev SupervisionEvent) { events <- ev }
	p, err := DirectProc(transport.Unix.Any(), "testproc", &o)
	require.NoError(t, err)
	shutdownAtEnd(t, p)
	return p, events
}

// shutdownAtEnd shuts p down when the test ends, within a deadline: a
// test that failed with an actor still blocked then reports it rather
// than hang.
func shutdownAtEnd(t *testing.T, p *Proc) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, p.Shutdown(ctx))
	})
}

func TestMain(m *testing.M) {
	if runPeer() || runRawPeer() {
		return
	}
	goleak.VerifyTestMain(m)
}

func TestPingPongAndOrder(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	h, err := p.Spawn("rec", &recorder{offset: 100})
	require.NoError(t, err)

	port, rx := OpenPort[int](client)
	require.NoError(t, h.Ref().Send(client, Ping{N: 1, Reply: port.Bind()}))
	got, err := rx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 101, got)

	const n = 10000
	for i := range n {
		require.NoError(t, h.Ref().Send(client, Record{N: i}))
	}
	rep, rrx := OpenOncePort[[]int](client)
	require.NoError(t, h.Ref().Send(client, Report{Reply: rep.Bind()}))
	seen, err := rrx.Recv(ctx)
	require.NoError(t, err)
	require.Len(t, seen, n)
	for i, v := range seen {
		require.Equal(t, i, v, "message %d out of order", i)
	}
}

func TestSpawnTypeAndNames(t *testing.T) {
	p, _ := newTestProc(t, nil)
	params, err := encodeParams(RecorderParams{Offset: 5})
	require.NoError(t, err)
	h, err := p.SpawnType("typed", "coretest.Recorder", params)
	require.NoError(t, err)
	assert.Equal(t, p.ID().ActorID("typed", 0), h.ID())

	_, err = p.SpawnType("typed", "coretest.Recorder", params)
	assert.ErrorIs(t, err, ErrNameTaken)
	_, err = p.SpawnType("x", "no.such.Type", nil)
	assert.ErrorIs(t, err, ErrUnknownActorType)
	bad, _ := encodeParams(RecorderParams{Reject: true})
	_, err = p.SpawnType("y", "coretest.Recorder", bad)
	assert.ErrorContains(t, err, "rejected by params")
	_, err = p.Spawn("bad name", &recorder{})
	assert.ErrorContains(t, err, "invalid actor name")
}

func TestChildrenAndParentStop(t *testing.T) {
	ctx := testCtx(t)
	p, events := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	superv := make(chan SupervisionEvent, 10)
	h, err := p.Spawn("parent", &recorder{superv: superv})
	require.NoError(t, err)

	var kids []ActorID
	for range 2 {
		port, rx := OpenOncePort[ActorID](client)
		require.NoError(t, h.Ref().Send(client, SpawnChild{Reply: port.Bind()}))
		id, err := rx.Recv(ctx)
		require.NoError(t, err)
		kids = append(kids, id)
	}
	assert.Equal(t, p.ID().ActorID("parent", 1), kids[0])
	assert.Equal(t, p.ID().ActorID("parent", 2), kids[1])
	kid, ok := p.Lookup(kids[0])
	require.True(t, ok)

	h.Stop("test over")
	ev, err := h.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, StatusStopped, ev.Status)
	assert.Equal(t, "test over", ev.Reason)
	kev, err := kid.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, StatusStopped, kev.Status)
	assert.Equal(t, "parent stopping", kev.Reason)

	root := testwait.Recv(t, events, 0, "the root's supervision event")
	assert.Equal(t, h.ID(), root.Actor)
	assert.False(t, root.Failed())

	// The stopped child no longer takes messages.
	require.NoError(t, ActorRef{ID: kids[1]}.Send(client, Record{N: 1}))
	u, err := client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, kids[1], u.Dest.Actor)
	assert.Contains(t, u.Reason, "stopped")
	assert.Equal(t, Record{N: 1}, u.Message)
}

func TestFailurePropagation(t *testing.T) {
	ctx := testCtx(t)
	p, events := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	superv := make(chan SupervisionEvent, 10)
	cleaned := make(chan error, 1)
	parent, err := p.Spawn("parent", &recorder{superv: superv, cleaned: cleaned})
	require.NoError(t, err)
	port, rx := OpenOncePort[ActorID](client)
	require.NoError(t, parent.Ref().Send(client, SpawnChild{Reply: port.Bind()}))
	kid, err := rx.Recv(ctx)
	require.NoError(t, err)

	require.NoError(t, ActorRef{ID: kid}.Send(client, Panic{Msg: "for testing"}))

	childEv := testwait.Recv(t, superv, 0, "the child's failure at its parent")
	assert.Equal(t, kid, childEv.Actor)
	assert.Equal(t, "for testing", childEv.Panic)
	assert.Contains(t, childEv.Stack, "recorder).Handle", "the stack should show the panicking handler")

	root := testwait.Recv(t, events, 0, "the root's supervision event")
	assert.Equal(t, parent.ID(), root.Actor)
	assert.True(t, root.Failed())
	assert.Contains(t, root.Err, "unhandled supervision event")
	assert.Equal(t, kid, root.RootCause().Actor, "the root cause survives the trip up")
	cerr := testwait.Recv(t, cleaned, 0, "the parent's cleanup")
	assert.ErrorContains(t, cerr, "unhandled supervision event")
	assert.Equal(t, StatusFailed, parent.Status())
}

func TestHandlerErrorAndAbsorbingParent(t *testing.T) {
	ctx := testCtx(t)
	p, events := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)

	solo, err := p.Spawn("solo", &recorder{})
	require.NoError(t, err)
	require.NoError(t, solo.Ref().Send(client, Fail{Msg: "bad input"}))
	ev := testwait.Recv(t, events, 0, "a root supervision event")
	assert.Equal(t, solo.ID(), ev.Actor)
	assert.Equal(t, "bad input", ev.Err)
	assert.Empty(t, ev.Panic)

	superv := make(chan SupervisionEvent, 10)
	parent, err := p.Spawn("parent", &recorder{superv: superv, absorb: true})
	require.NoError(t, err)
	port, rx := OpenOncePort[ActorID](client)
	require.NoError(t, parent.Ref().Send(client, SpawnChild{Reply: port.Bind()}))
	kid, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, ActorRef{ID: kid}.Send(client, Fail{Msg: "child broke"}))
	got := testwait.Recv(t, superv, 0, "the child's failure at its parent")
	assert.Equal(t, "child broke", got.Err)

	// The parent absorbed the failure and still works.
	pp, prx := OpenPort[int](client)
	require.NoError(t, parent.Ref().Send(client, Ping{N: 2, Reply: pp.Bind()}))
	v, err := prx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, v)
	select {
	case ev := <-events:
		t.Fatalf("unexpected root event %v", ev)
	default:
	}
}

func TestInitFailure(t *testing.T) {
	p, events := newTestProc(t, nil)
	h, err := p.Spawn("bad", &initFails{})
	require.NoError(t, err)
	ev := testwait.Recv(t, events, 0, "a root supervision event")
	assert.Equal(t, h.ID(), ev.Actor)
	assert.Contains(t, ev.Err, "initialization error: no config")
}

type initFails struct{}

func (initFails) Init(*Context) error        { return errors.New("no config") }
func (initFails) Handle(*Context, any) error { return nil }

func TestStopDiscardsAndDrainProcesses(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)

	for _, drain := range []bool{false, true} {
		release := make(chan struct{})
		name := fmt.Sprintf("blocker-%v", drain)
		h, err := p.Spawn(name, &recorder{block: release})
		require.NoError(t, err)
		started, srx := OpenOncePort[bool](client)
		require.NoError(t, h.Ref().Send(client, Block{Started: started.Bind()}))
		_, err = srx.Recv(ctx)
		require.NoError(t, err)
		for i := range 5 {
			require.NoError(t, h.Ref().Send(client, Record{N: i}))
		}
		if drain {
			h.DrainAndStop("drain")
		} else {
			h.Stop("stop")
		}
		// Sent after the stop request: refused either way.
		require.NoError(t, h.Ref().Send(client, Record{N: 99}))
		close(release)
		_, err = h.Wait(ctx)
		require.NoError(t, err)

		var bounced []int
		deadline, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		for {
			u, err := client.Undeliverables().Recv(deadline)
			if err != nil {
				break
			}
			bounced = append(bounced, u.Message.(Record).N)
		}
		cancel()
		if drain {
			assert.Equal(t, []int{99}, bounced, "drain handles what was queued")
		} else {
			assert.ElementsMatch(t, []int{0, 1, 2, 3, 4, 99}, bounced, "stop bounces the queue")
		}
	}
}

func TestUndeliverableReasons(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)

	// Unknown actor.
	require.NoError(t, ActorRef{ID: p.ID().ActorID("ghost", 0)}.Send(client, Record{}))
	u, err := client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Contains(t, u.Reason, "no actor")
	assert.Equal(t, "coretest.Record", u.Type)

	// Closed port.
	port, rx := OpenPort[int](client)
	rx.Close()
	require.NoError(t, port.Bind().Send(client, 1))
	u, err = client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Contains(t, u.Reason, "not bound")
	_, err = rx.Recv(ctx)
	assert.ErrorIs(t, err, ErrPortClosed)

	// Once port used twice.
	once, orx := OpenOncePort[int](client)
	require.NoError(t, once.Bind().Send(client, 1))
	require.NoError(t, once.Bind().Send(client, 2))
	v, err := orx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	u, err = client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, u.Message)

	// Wrong type into a typed port.
	wrong, _ := OpenPort[string](client)
	require.NoError(t, PortRef[int]{ID: wrong.ID()}.Send(client, 5))
	u, err = client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Contains(t, u.Reason, "port expects string")

	// An actor gets its undeliverables through its handler.
	undeliv := make(chan Undeliverable, 1)
	h, err := p.Spawn("sender", &recorder{undeliv: undeliv})
	require.NoError(t, err)
	ghost := p.ID().ActorID("ghost", 0)
	require.NoError(t, h.Ref().Send(client, SendTo{Dest: ghost, Msg: Record{N: 7}}))
	select {
	case u := <-undeliv:
		assert.Equal(t, ghost, u.Dest.Actor)
		assert.Equal(t, h.ID(), u.Sender)
	case <-ctx.Done():
		t.Fatal("no undeliverable reached the actor")
	}
}

func TestClientInstanceLifecycle(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, handle, err := p.Instance("client")
	require.NoError(t, err)
	assert.Equal(t, StatusClient, handle.Status())
	_, _, err = p.Instance("client")
	assert.ErrorIs(t, err, ErrNameTaken)

	_, rx := OpenPort[int](client)
	handle.Stop("done")
	_, err = handle.Wait(ctx)
	require.NoError(t, err)
	_, err = rx.Recv(ctx)
	assert.ErrorIs(t, err, ErrPortClosed)
	assert.ErrorIs(t, ActorRef{ID: client.ID()}.Send(client, Record{}), ErrInstanceStopped)
	// The name is free again.
	_, _, err = p.Instance("client")
	require.NoError(t, err)
}

func TestAccumulatingPorts(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)

	sum, srx := OpenAccumPort(client, Sum[int]())
	mn, mnrx := OpenAccumPort(client, Min[int]())
	mx, mxrx := OpenAccumPort(client, Max[int]())
	col, crx := OpenAccumPort(client, Collect[int]())
	for i := 1; i <= 10; i++ {
		h, err := p.Spawn(fmt.Sprintf("r%d", i), &recorder{offset: i * 10})
		require.NoError(t, err)
		for _, port := range []PortRef[int]{sum.Bind(), mn.Bind(), mx.Bind(), col.Bind()} {
			require.NoError(t, h.Ref().Send(client, Ping{N: 0, Reply: port}))
		}
	}
	s, n, err := srx.Wait(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	assert.Equal(t, 550, s)
	m, _, err := mnrx.Wait(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, Extreme[int]{Value: 10, Set: true}, m)
	x, _, err := mxrx.Wait(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, 100, x.Value)
	all, _, err := crx.Wait(ctx, 10)
	require.NoError(t, err)
	assert.ElementsMatch(t, []int{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, all)

	// Recv coalesces: one call sees all updates that arrived so far.
	got, count, err := srx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, 550, got)
	assert.Equal(t, 10, count)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, _, err = srx.Wait(short, 11)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestShutdownStopsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	p, err := DirectProc(transport.Unix.Any(), "shut", nil)
	require.NoError(t, err)
	cleaned := make(chan error, 1)
	h, err := p.Spawn("a", &recorder{cleaned: cleaned})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
	assert.Equal(t, StatusStopped, h.Status())
	assert.NoError(t, testwait.Recv(t, cleaned, 0, "the actor's cleanup"))
	_, err = p.Spawn("b", &recorder{})
	assert.ErrorIs(t, err, ErrProcStopped)
	goleak.VerifyNone(t, before)
}

func TestRawPort(t *testing.T) {
	ctx := testCtx(t)
	p, _ := newTestProc(t, nil)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	id, rx := OpenRawPort(client, false)
	defer rx.Close()
	h, err := p.Spawn("rec", &recorder{offset: 1})
	require.NoError(t, err)
	// A typed reference to the raw port: the actor replies with an int,
	// which the raw side sees encoded.
	require.NoError(t, h.Ref().Send(client, Ping{N: 41, Reply: PortRef[int]{ID: id}}))
	m, err := rx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, h.ID(), m.Sender)
	assert.Equal(t, "int", m.Type)
	var v int
	require.NoError(t, msgpack.Unmarshal(m.Body, &v))
	assert.Equal(t, 42, v)

	once, orx := OpenRawPort(client, true)
	require.NoError(t, PortRef[string]{ID: once}.Send(client, "a"))
	require.NoError(t, PortRef[string]{ID: once}.Send(client, "b"))
	m, err = orx.Recv(ctx)
	require.NoError(t, err)
	var s string
	require.NoError(t, msgpack.Unmarshal(m.Body, &s))
	assert.Equal(t, "a", s)
	u, err := client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "b", u.Message)
}

// twoProcs serves two procs on fresh unix addresses, shut down when the
// test ends.
func twoProcs(t *testing.T) (a, b *Proc) {
	t.Helper()
	var err error
	a, err = DirectProc(transport.Unix.Any(), "a", nil)
	require.NoError(t, err)
	b, err = DirectProc(transport.Unix.Any(), "b", nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		b.Shutdown(ctx)
	})
	return a, b
}

// An actor asks the program hosting its proc to end; the program hears
// it once however often it is asked, and a proc nobody hosts says so.
func TestRequestExit(t *testing.T) {
	asked := make(chan struct{}, 2)
	p, err := DirectProc(transport.Local.Any(), "exiting", &ProcOptions{OnExitRequest: func() { asked <- struct{}{} }})
	require.NoError(t, err)
	defer p.Shutdown(context.Background())
	require.True(t, p.RequestExit())
	require.True(t, p.RequestExit())
	require.Len(t, asked, 1)

	q, err := DirectProc(transport.Local.Any(), "hosted-by-nobody", nil)
	require.NoError(t, err)
	defer q.Shutdown(context.Background())
	require.False(t, q.RequestExit())
}

// instanceTeller hands its instance to the test at its first message.
type instanceTeller struct{ out chan<- *Instance }

func (a *instanceTeller) Handle(cx *Context, msg any) error {
	select {
	case a.out <- cx.Instance:
	default:
	}
	return nil
}

// A port opened on an actor after its ports were closed, while it still
// terminates (here from the proc's supervisor callback), is closed at
// once rather than left open on an actor that is gone.
func TestNoPortOpensOnceAnActorsPortsClosed(t *testing.T) {
	insts := make(chan *Instance, 1)
	opened := make(chan *PortReceiver[int], 1)
	p, err := DirectProc(transport.Local.Any(), "gap", &ProcOptions{Supervisor: func(ev SupervisionEvent) {
		if ev.Actor.Name == "a" {
			_, rx := OpenPort[int](<-insts)
			opened <- rx
		}
	}})
	require.NoError(t, err)
	shutdownAtEnd(t, p)
	h, err := p.Spawn("a", &instanceTeller{out: insts})
	require.NoError(t, err)
	client, _, err := p.Instance("c")
	require.NoError(t, err)
	require.NoError(t, h.Ref().Send(client, Record{N: 1}))
	inst := testwait.Recv(t, insts, 0, "the actor's instance")
	insts <- inst // for the supervisor callback
	h.Stop("bye")
	rx := testwait.Recv(t, opened, 0, "the port opened while the actor terminated")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = rx.Recv(ctx)
	require.ErrorIs(t, err, ErrPortClosed)
}

// A child's failure that its parent had not handled yet when it was told
// to stop is not lost: it is the cause of the parent's event.
func TestChildFailurePendingAtStopIsTheCause(t *testing.T) {
	p, err := DirectProc(transport.Local.Any(), "sup", nil)
	require.NoError(t, err)
	shutdownAtEnd(t, p)
	block := make(chan struct{})
	par, err := p.Spawn("par", &recorder{block: block})
	require.NoError(t, err)
	client, _, err := p.Instance("c")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	idp, idrx := OpenOncePort[ActorID](client)
	require.NoError(t, par.Ref().Send(client, SpawnChild{Reply: idp.Bind()}))
	child, err := idrx.Recv(ctx)
	require.NoError(t, err)
	sp, srx := OpenOncePort[bool](client)
	require.NoError(t, par.Ref().Send(client, Block{Started: sp.Bind()}))
	_, err = srx.Recv(ctx)
	require.NoError(t, err, "the parent is busy")
	ch, ok := p.Lookup(child)
	require.True(t, ok)
	require.NoError(t, ActorRef{ID: child}.Send(client, Panic{Msg: "boom"}))
	_, err = ch.Wait(ctx) // its event is queued at the busy parent
	require.NoError(t, err)

	par.Stop("operator")
	close(block)
	ev, err := par.Wait(ctx)
	require.NoError(t, err)
	require.NotNil(t, ev.Cause, "the parent's event: %v", ev)
	require.Equal(t, child, ev.Cause.Actor)
	require.Equal(t, "boom", ev.Cause.Panic)
}
