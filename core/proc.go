package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormesh/actormesh/transport"
)

// Errors returned by procs. Undeliverable reasons use their text.
var (
	ErrProcStopped        = errors.New("core: proc is shut down")
	ErrNameTaken          = errors.New("core: an actor with this name is already running")
	ErrUnknownActorType   = errors.New("core: unknown actor type")
	ErrUnknownMessageType = errors.New("core: unknown message type")
	ErrInstanceStopped    = errors.New("core: instance is stopped")
)

// ProcOptions configures a proc. The zero value works.
type ProcOptions struct {
	// Supervisor receives the supervision events of root actors: every
	// stop, clean or failed. Without one, events are logged. It is called
	// from the stopping actor's goroutine and must not block for long.
	Supervisor func(SupervisionEvent)
	// Transport configures the proc's server and its outgoing channels
	// (frame size, delivery timeout, keepalive).
	Transport transport.Options
	// Logger receives the proc's diagnostics (default slog.Default()).
	Logger *slog.Logger
	// OnExitRequest is how the program hosting the proc learns that an
	// actor asked it to end (RequestExit): a host told to shut down, say.
	// The program decides how; the proc itself keeps running. It is
	// called at most once, and must not block.
	OnExitRequest func()

	// senderSweep is how often idle outgoing channels are looked for (see
	// sweepSenders); zero means senderSweepEvery. For tests.
	senderSweep time.Duration
}

// senderSweepEvery: an outgoing channel unused for two sweeps in a row,
// with nothing in flight, is closed; the next message to its address
// dials anew.
const senderSweepEvery = time.Minute

// Proc is a set of actors reachable at one channel address. It routes
// messages to its own actors directly and to other procs over one channel
// per destination address.
type Proc struct {
	id     ProcID
	opts   ProcOptions
	log    *slog.Logger
	server *transport.Server
	// ready is closed once id is set: the server may hand over a message
	// before Serve has even returned the bound address.
	ready chan struct{}

	cells cellTable

	mu       sync.Mutex
	roots    map[string]*rootEntry
	senders  map[transport.Addr]*senderEntry
	exitOnce sync.Once // RequestExit's
	// lastSender is the sender used last (see sender).
	lastSender atomic.Pointer[senderEntry]
	stopped    bool
	// The sweeper of idle senders, started with the first dial.
	sweeping  bool
	sweepStop chan struct{}
	sweepDone chan struct{}
	// recycle: received frames are the transport's buffers, which this proc
	// may release once decoded. Not on a local channel, where the handler
	// gets the sender's own bytes.
	recycle bool
	tombs   tombstones

	workers workers
}

type rootEntry struct {
	pids atomic.Uint64 // next child pid; the root itself is pid 0
	c    *cell
}

// DirectProc serves addr (an Any address binds a fresh one) and returns a
// proc named name that is reachable there.
func DirectProc(addr transport.Addr, name string, opts *ProcOptions) (*Proc, error) {
	if err := checkName("proc", name); err != nil {
		return nil, err
	}
	p := newProc(opts)
	p.ready = make(chan struct{})
	topts := p.opts.Transport
	srv, err := transport.ServeContinuing(addr, p.receive, &topts)
	if err != nil {
		return nil, fmt.Errorf("core: serving proc %q: %w", name, err)
	}
	p.server = srv
	p.recycle = addr.Transport != transport.Local
	p.id = ProcID{Addr: srv.Addr(), Name: name}
	close(p.ready)
	return p, nil
}

func newProc(opts *ProcOptions) *Proc {
	p := &Proc{roots: map[string]*rootEntry{}, senders: map[transport.Addr]*senderEntry{}}
	if opts != nil {
		p.opts = *opts
	}
	p.log = p.opts.Logger
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.opts.Transport.Logger == nil {
		p.opts.Transport.Logger = p.log
	}
	user := p.opts.Transport.OnUndeliverable
	p.opts.Transport.OnUndeliverable = func(msg []byte, err error) {
		p.transportUndeliverable(msg, err)
		if user != nil {
			user(msg, err)
		}
	}
	return p
}

// ID is the proc's id.
func (p *Proc) ID() ProcID { return p.id }

// RequestExit asks the program hosting p to end, through
// ProcOptions.OnExitRequest. It reports whether anyone was there to ask;
// a second request is not passed on.
func (p *Proc) RequestExit() bool {
	if p.opts.OnExitRequest == nil {
		return false
	}
	p.exitOnce.Do(p.opts.OnExitRequest)
	return true
}

// Addr is the address the proc serves.
func (p *Proc) Addr() transport.Addr { return p.id.Addr }

// Instance creates a client instance: an actor identity with a mailbox and
// ports but no message loop, for code that drives actors from outside.
func (p *Proc) Instance(name string) (*Instance, *ActorHandle, error) {
	c, err := p.newRoot(name, nil)
	if err != nil {
		return nil, nil, err
	}
	c.status.Store(int32(StatusClient))
	inst := c.inst
	und := newQueue[fromSender[Undeliverable]]()
	und.limit = maxUndeliverables
	und.onDrop = func(dropped int) {
		if dropped&(dropped-1) == 0 { // at 1, 2, 4, 8, ...: a trail, not a flood
			p.log.Warn("undeliverable messages nobody reads: dropping the oldest", "instance", c.id, "dropped", dropped)
		}
	}
	inst.undeliverables = &PortReceiver[Undeliverable]{inst: inst, id: c.id.Port(UndeliverablePort), q: und}
	c.bindPort(UndeliverablePort, &streamSink[Undeliverable]{q: und})
	return inst, &ActorHandle{c: c}, nil
}

// Spawn starts a root actor named name.
func (p *Proc) Spawn(name string, a Actor) (*ActorHandle, error) {
	if a == nil {
		return nil, errors.New("core: Spawn needs an actor")
	}
	c, err := p.newRoot(name, a)
	if err != nil {
		return nil, err
	}
	p.workers.start(c, true)
	return &ActorHandle{c: c}, nil
}

// SpawnType starts a root actor of a registered type, built from
// msgpack-encoded params. This is how remote procs are asked to spawn.
func (p *Proc) SpawnType(name, typeName string, params []byte) (*ActorHandle, error) {
	f, ok := lookupActorFactory(typeName)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownActorType, typeName)
	}
	a, err := f(params)
	if err != nil {
		return nil, fmt.Errorf("core: creating actor %q of type %q: %w", name, typeName, err)
	}
	return p.Spawn(name, a)
}

// Lookup returns the handle of a live actor on this proc.
func (p *Proc) Lookup(id ActorID) (*ActorHandle, bool) {
	c := p.cells.load(id)
	if c == nil || id.Proc != p.id {
		return nil, false
	}
	return &ActorHandle{c: c}, true
}

func (p *Proc) newRoot(name string, a Actor) (*cell, error) {
	if err := checkName("actor", name); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil, ErrProcStopped
	}
	if _, ok := p.roots[name]; ok {
		return nil, fmt.Errorf("%w: %q on %s", ErrNameTaken, name, p.id)
	}
	re := &rootEntry{}
	re.pids.Store(1)
	c := p.newCell(p.id.ActorID(name, 0), a, nil, re)
	re.c = c
	p.roots[name] = re
	p.cells.store(c)
	return c, nil
}

func (p *Proc) newCell(id ActorID, a Actor, parent *cell, re *rootEntry) *cell {
	c := &cell{proc: p, id: id, actor: a, parent: parent, root: re, done: make(chan struct{})}
	c.inst = &Instance{proc: p, c: c}
	c.inst.ports.Store(FirstEphemeralPort)
	c.cx.Instance = c.inst
	c.cx.cell = c
	if a != nil {
		c.running = true // the spawner starts the loop, which initialises first
	}
	return c
}

func (p *Proc) spawnChild(parent *cell, a Actor) (*ActorHandle, error) {
	if a == nil {
		return nil, errors.New("core: Spawn needs an actor")
	}
	pid := parent.root.pids.Add(1) - 1
	c := p.newCell(p.id.ActorID(parent.root.c.id.Name, pid), a, parent, parent.root)
	parent.mu.Lock()
	if parent.closed {
		reason := parent.closeReason
		parent.mu.Unlock()
		return nil, fmt.Errorf("core: cannot spawn a child: %s", reason)
	}
	if parent.children == nil {
		parent.children = map[uint64]*cell{}
	}
	parent.children[pid] = c
	parent.mu.Unlock()
	p.cells.store(c)
	p.workers.start(c, true)
	return &ActorHandle{c: c}, nil
}

func (p *Proc) unregister(c *cell) {
	p.cells.delete(c)
	p.mu.Lock()
	if c.parent == nil {
		if re, ok := p.roots[c.id.Name]; ok && re.c == c {
			delete(p.roots, c.id.Name)
		}
	}
	p.tombs.add(c.id, c.closeReason)
	p.mu.Unlock()
}

// SetSupervisor replaces the function that receives root actors' events
// (see ProcOptions.Supervisor); nil restores logging. An agent that owns
// the proc installs itself this way.
func (p *Proc) SetSupervisor(f func(SupervisionEvent)) {
	p.mu.Lock()
	p.opts.Supervisor = f
	p.mu.Unlock()
}

func (p *Proc) supervise(ev SupervisionEvent) {
	p.mu.Lock()
	f := p.opts.Supervisor
	p.mu.Unlock()
	if f != nil {
		f(ev)
		return
	}
	if ev.Failed() {
		p.log.Error("actor failed", "actor", ev.Actor, "error", ev.Err, "root_cause", ev.RootCause().Actor)
	} else {
		p.log.Debug("actor stopped", "actor", ev.Actor, "reason", ev.Reason)
	}
}

func (p *Proc) stopClient(c *cell, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.closeReason = fmt.Sprintf("instance %s stopped: %s", c.id, reason)
	closeReason := c.closeReason
	c.mu.Unlock()
	c.closePorts(closeReason)
	ev := SupervisionEvent{Actor: c.id, Status: StatusStopped, Reason: reason, Time: time.Now()}
	c.final = &ev
	p.unregister(c)
	c.status.Store(int32(StatusStopped))
	close(c.done)
}

// Shutdown stops every actor, letting each drain its queue until ctx
// expires, then stops the rest at once; finally it closes the proc's
// channels. It returns ctx's error if actors had to be stopped forcibly.
func (p *Proc) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	roots := make([]*cell, 0, len(p.roots))
	for _, re := range p.roots {
		roots = append(roots, re.c)
	}
	p.mu.Unlock()

	for _, c := range roots {
		c.stop("proc shutting down", true)
	}
	var forced error
	for _, c := range roots {
		select {
		case <-c.done:
		case <-ctx.Done():
			forced = fmt.Errorf("core: proc %s shutdown: %w", p.id, ctx.Err())
		}
		if forced != nil {
			break
		}
	}
	if forced != nil {
		for _, c := range roots {
			c.stop("proc shutting down (forced)", false)
		}
		grace := time.NewTimer(childStopTimeout)
		for _, c := range roots {
			select {
			case <-c.done:
			case <-grace.C:
			}
		}
		grace.Stop()
	}

	p.mu.Lock()
	sweeping := p.sweeping
	p.sweeping = false
	p.mu.Unlock()
	if sweeping {
		close(p.sweepStop)
		<-p.sweepDone
	}
	p.mu.Lock()
	senders := p.senders
	p.senders = map[transport.Addr]*senderEntry{}
	p.lastSender.Store(nil)
	p.mu.Unlock()
	// Closing flushes what is queued, which takes up to a second for a
	// dead peer: do it for every destination at once.
	var wg sync.WaitGroup
	for _, e := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.s.Close()
		}()
	}
	wg.Wait()
	if p.server != nil {
		p.server.Close()
	}
	p.workers.close()
	return forced
}

// Instance is an actor's identity with its mailbox: what sends, opens ports
// and spawns. A client instance has no message loop; an actor's Context
// embeds its Instance.
type Instance struct {
	proc           *Proc
	c              *cell
	ports          atomic.Uint64
	undeliverables *PortReceiver[Undeliverable]
}

// ID is the instance's actor id.
func (i *Instance) ID() ActorID { return i.c.id }

// Self is an ActorRef to this instance.
func (i *Instance) Self() ActorRef { return ActorRef{ID: i.c.id} }

// Proc is the proc the instance lives on.
func (i *Instance) Proc() *Proc { return i.proc }

// Undeliverables receives the messages this client instance sent that
// could not be delivered, with the reason. It is nil for actors, which get
// them through UndeliverableHandler. It keeps the newest
// maxUndeliverables: a client that never reads them (one that only makes
// mesh.Calls, say) does not grow without bound.
func (i *Instance) Undeliverables() *PortReceiver[Undeliverable] { return i.undeliverables }

func (i *Instance) nextPort() uint64 { return i.ports.Add(1) - 1 }

// maxUndeliverables bounds a client instance's unread undeliverables.
const maxUndeliverables = 1024

func (i *Instance) post(dest PortID, msg any, headers map[string]string) error {
	c := i.c
	if c.actor == nil && c.loadStatus() == StatusStopped {
		return fmt.Errorf("%w: %s", ErrInstanceStopped, c.id)
	}
	// Fast path: a message to an actor on this proc goes straight into its
	// queue, with no envelope on the heap.
	if dest.Index == ActorPort && dest.Actor.Proc == i.proc.id {
		if d := i.proc.cells.load(dest.Actor); d != nil && d.actor != nil {
			w := work{kind: workMessage, msg: msg, env: envelope{sender: c.id, dest: dest, value: msg, headers: headers, local: true}}
			if ok, _ := d.enqueue(w); ok {
				return nil
			}
		}
	}
	if dest.Actor.Proc != i.proc.id {
		env := envelope{sender: c.id, dest: dest, value: msg, headers: headers, local: true}
		return i.proc.sendRemoteFrom(c, &env)
	}
	env := &envelope{sender: c.id, dest: dest, value: msg, headers: headers, local: true}
	return i.proc.route(env)
}

// EncodeMessage returns msg's registered type name and msgpack body, the
// form in which it crosses procs. Forwarders (such as a mesh's cast tree)
// carry messages in this form without knowing their types.
func EncodeMessage(msg any) (typeName string, body []byte, err error) {
	name, ok := MessageTypeName(msg)
	if !ok {
		return "", nil, fmt.Errorf("%w %T: register it with core.RegisterMessage", ErrUnknownMessageType, msg)
	}
	body, err = msgpackMarshal(msg)
	if err != nil {
		return "", nil, fmt.Errorf("core: encoding %T: %w", msg, err)
	}
	return name, body, nil
}

// DecodeMessage is the inverse of EncodeMessage.
func DecodeMessage(typeName string, body []byte) (any, error) {
	v, _, err := decodeRegistered(typeName, body, false)
	return v, err
}

// PostEncoded sends a message already in its encoded form (see
// EncodeMessage) to dest, with headers. The receiver decodes it by its
// registered type name, which must be known there.
func (i *Instance) PostEncoded(dest PortID, typeName string, body []byte, headers map[string]string) error {
	if err := i.checkLive(); err != nil {
		return err
	}
	if dest.Actor.Proc != i.proc.id {
		env := envelope{sender: i.c.id, dest: dest, typeName: typeName, body: body, headers: headers}
		return i.proc.sendRemote(&env) // on the stack: sendRemote does not retain it
	}
	env := &envelope{sender: i.c.id, dest: dest, typeName: typeName, body: body, headers: headers}
	return i.proc.route(env)
}

func (i *Instance) checkLive() error {
	if c := i.c; c.actor == nil && c.loadStatus() == StatusStopped {
		return fmt.Errorf("%w: %s", ErrInstanceStopped, c.id)
	}
	return nil
}

// route sends env towards its destination: locally by value, remotely
// encoded. Only a message that cannot be encoded fails here; every other
// failure comes back to the sender as an Undeliverable.
func (p *Proc) route(env *envelope) error {
	if env.dest.Actor.Proc == p.id {
		p.deliver(env, false)
		return nil
	}
	return p.sendRemote(env)
}

// sendRemote encodes env onto the channel to its destination's address.
// It does not retain env, which lets senders keep it on the stack.
func (p *Proc) sendRemote(env *envelope) error { return p.sendRemoteFrom(nil, env) }

// sendRemoteFrom is sendRemote for a message c sends with its Go value,
// which may then join a batch (see batch.go).
func (p *Proc) sendRemoteFrom(c *cell, env *envelope) error {
	var key *batchKey
	if c != nil && env.value != nil {
		key = batchKeyFor(c, env, messageType(env.value))
	}
	if key != nil {
		if s, err := p.sender(env.dest.Actor.Proc.Addr); err == nil && s.Coalesce(key, func(last []byte, limit int) ([]byte, bool) {
			return key.merge(last, limit, env)
		}) {
			return nil
		}
	}
	msg, err := p.encode(env)
	if err != nil {
		return err
	}
	s, err := p.sender(env.dest.Actor.Proc.Addr)
	if err != nil {
		transport.ReleaseBuffer(msg)
		p.returnUndeliverable(env, fmt.Sprintf("cannot dial %s: %v", env.dest.Actor.Proc.Addr, err))
		return nil
	}
	// The encoded message's buffer is ours alone (see encode): the channel
	// recycles it once delivered.
	if key != nil {
		s.PostKeyed(msg, key)
	} else {
		s.PostRelease(msg)
	}
	return nil
}

// encode returns env encoded in a buffer of its own, often from the
// transport's pool (transport.AllocBuffer).
func (p *Proc) encode(env *envelope) ([]byte, error) {
	if !env.local {
		return encodeEnvelope(env, env.body), nil
	}
	var mt *msgType
	if env.value != nil {
		mt = messageType(env.value)
	}
	if env.typeName == "" && env.value != nil {
		if mt == nil && env.dest.Index == ActorPort {
			return nil, fmt.Errorf("%w %T: register it with core.RegisterMessage to send it to another proc", ErrUnknownMessageType, env.value)
		}
		if mt != nil {
			env.typeName = mt.name
		}
	}
	out, err := encodeEnvelopeValue(env, sizeHint(env.value), mt)
	if err != nil {
		return nil, fmt.Errorf("core: encoding %T for %s: %w", env.value, env.dest, err)
	}
	return out, nil
}

// sizeHint guesses a body's encoded size so that large payloads are
// written into a buffer of the right size at once.
func sizeHint(v any) int {
	switch m := v.(type) {
	case []byte:
		return len(m)
	case string:
		return len(m)
	case interface{ SizeHint() int }:
		return m.SizeHint()
	}
	return 64
}

// sender returns the cached channel to addr, dialling on first use.
func (p *Proc) sender(addr transport.Addr) (*transport.Sender, error) {
	// A sender usually talks to one destination many times in a row.
	if last := p.lastSender.Load(); last != nil && last.addr == addr {
		last.touch()
		return last.s, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.senders[addr]; ok {
		e.touch()
		p.lastSender.Store(e) // the entry, not a copy: no allocation per switch
		return e.s, nil
	}
	if p.stopped {
		return nil, ErrProcStopped
	}
	topts := p.opts.Transport
	s, err := transport.Dial(addr, &topts)
	if err != nil {
		return nil, err
	}
	e := &senderEntry{addr: addr, s: s}
	e.touch()
	p.senders[addr] = e
	p.lastSender.Store(e)
	if !p.sweeping {
		p.sweeping = true
		p.sweepStop, p.sweepDone = make(chan struct{}), make(chan struct{})
		every := p.opts.senderSweep
		if every <= 0 {
			every = senderSweepEvery
		}
		go p.sweepSenders(every)
	}
	return s, nil
}

type senderEntry struct {
	addr  transport.Addr
	s     *transport.Sender
	used  atomic.Bool // since the last sweep
	stale bool        // unused at the last sweep; guarded by Proc.mu
}

func (e *senderEntry) touch() {
	if !e.used.Load() { // mostly a read: no store per message
		e.used.Store(true)
	}
}

// sweepSenders closes the outgoing channels that stayed unused for two
// sweeps in a row and have nothing in flight: every proc a proc ever
// talked to (or was made to answer, by a forged sender address) would
// otherwise keep a channel and its goroutines for good. A channel is
// first taken out of the lastSender fast path, and closed only a sweep
// later, so that a caller that had just fetched it has long posted on it.
func (p *Proc) sweepSenders(every time.Duration) {
	defer close(p.sweepDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-p.sweepStop:
			return
		case <-tick.C:
		}
		var idle []*senderEntry
		p.mu.Lock()
		for addr, e := range p.senders {
			switch {
			case e.used.Swap(false):
				e.stale = false
			case !e.stale:
				e.stale = true
				p.lastSender.CompareAndSwap(e, nil)
			case e.s.Idle():
				delete(p.senders, addr)
				idle = append(idle, e)
			}
		}
		p.mu.Unlock()
		for _, e := range idle {
			e.s.Close()
		}
	}
}

// receive is the server's handler for messages from other procs.
func (p *Proc) receive(msg []byte) transport.Continuation {
	<-p.ready
	// Delivery copies what it keeps out of env (a mailbox holds envelopes
	// by value), so one envelope per message need not be garbage.
	env := envelopes.Get().(*envelope)
	defer func() {
		*env = envelope{}
		envelopes.Put(env)
	}()
	r, err := env.decodeHeader(msg)
	if err != nil {
		p.log.Error("dropping malformed envelope", "proc", p.id, "error", err, "bytes", len(msg))
		return nil
	}
	if env.kind == kindBatch {
		return p.receiveBatch(env, r)
	}
	if err := env.decodeBody(&r); err != nil {
		p.log.Error("dropping malformed envelope", "proc", p.id, "error", err, "bytes", len(msg))
		return nil
	}
	if p.recycle {
		env.frame = msg
	}
	if env.dest.Actor.Proc != p.id {
		p.returnUndeliverable(env, fmt.Sprintf("no proc %q at %s (this is %s)", env.dest.Actor.Proc.Name, p.id.Addr, p.id))
		return nil
	}
	return p.deliver(env, len(msg) < maxClaimed)
}

// maxClaimed is the size from which a received message is never run on
// the connection's reader (see deliver's claim): decoding it takes long
// next to a goroutine hand-off, and on the reader it would hold up
// reading the next message instead of overlapping with it (1 MiB
// messages with a []byte: a third more throughput).
const maxClaimed = 64 << 10

// receiveBatch delivers the messages of a batch, env holding its header
// and r being at its bodies. The frame is not recycled: its messages are
// decoded at different times, and copied out of it (env.shared). An
// actor gets the batch as one item in its queue.
func (p *Proc) receiveBatch(env *envelope, r reader) transport.Continuation {
	env.kind, env.shared = kindMessage, true
	bodies, err := batchBodies(&r.Reader)
	if err == nil && r.Off != len(r.B) {
		err = fmt.Errorf("core: envelope: %d trailing bytes", len(r.B)-r.Off)
	}
	if err != nil {
		p.log.Error("dropping malformed batch", "proc", p.id, "error", err, "bytes", len(r.B))
		return nil
	}
	batch := work{kind: workBatch, env: *env}
	batch.env.body = bodies
	if env.dest.Actor.Proc != p.id {
		reason := fmt.Sprintf("no proc %q at %s (this is %s)", env.dest.Actor.Proc.Name, p.id.Addr, p.id)
		batch.batchMessages(func(env *envelope) { p.returnUndeliverable(env, reason) })
		return nil
	}
	c := p.cells.loadCached(env.dest.Actor)
	if c != nil && c.actor != nil && env.dest.Index == ActorPort && env.mtype != nil {
		ok, reason, claimed := c.enqueueClaim(batch, true)
		if !ok {
			batch.batchMessages(func(env *envelope) { p.returnUndeliverable(env, reason) })
		}
		if claimed {
			return c
		}
		return nil
	}
	var k transport.Continuation
	batch.batchMessages(func(env *envelope) {
		// The first message may claim an idle actor's loop for this
		// reader; the others then queue behind it.
		if kk := p.deliver(env, k == nil); kk != nil {
			k = kk
		}
	})
	return k
}

var envelopes = sync.Pool{New: func() any { return new(envelope) }}

// deliver hands env to a local actor or port. With claim, a message that
// finds its actor idle is not given to a worker: the actor's loop is
// returned for the caller (a connection's reader) to run itself, which
// spares a goroutine hand-off per message.
func (p *Proc) deliver(env *envelope, claim bool) (k transport.Continuation) {
	var c *cell
	if claim {
		c = p.cells.loadCached(env.dest.Actor)
	} else {
		c = p.cells.load(env.dest.Actor)
	}
	if c == nil {
		p.returnUndeliverable(env, p.unknownActorReason(env.dest.Actor))
		return
	}
	switch idx := env.dest.Index; {
	case idx == ActorPort:
		if c.actor == nil {
			// A client instance answers at its actor port only through an
			// inline handler (BindInlineHandler).
			if s, _ := c.port(ActorPort); s != nil {
				env.relayOK = claim
				err := deliverInline(s, env)
				k = env.relayed
				env.relayOK, env.relayed = false, nil
				if err != nil {
					if env.relayedFrame {
						// The body went on with its frame (Relay) and may
						// be another message's by now: return the rest.
						env.body = nil
					}
					p.returnUndeliverable(env, err.Error())
				}
				return k
			}
			p.returnUndeliverable(env, fmt.Sprintf("%s is a client instance and has no message handler", c.id))
			return nil
		}
		// Remote messages are decoded in the actor's loop, not here.
		if !env.local && env.mtype == nil {
			if _, ok := lookupMessageType(env.typeName); !ok {
				p.returnUndeliverable(env, fmt.Sprintf("%v %q", ErrUnknownMessageType, env.typeName))
				return nil
			}
		}
		ok, reason, claimed := c.enqueueClaim(work{kind: workMessage, env: *env, msg: env.value}, claim)
		if !ok {
			p.returnUndeliverable(env, reason)
		}
		if claimed {
			return c
		}
	case idx == UndeliverablePort && c.actor != nil:
		u, err := decodeAs[Undeliverable](env)
		if err != nil {
			p.log.Error("malformed undeliverable", "actor", c.id, "error", err)
			return nil
		}
		env.releaseFrame() // an undeliverable is never returned again
		if ok, reason := c.enqueue(work{kind: workUndeliverable, env: *env, msg: u}); !ok {
			p.log.Debug("undeliverable message abandoned", "actor", c.id, "dest", u.Dest, "reason", u.Reason, "because", reason)
		}
	default:
		s, reason := c.port(idx)
		if s == nil {
			p.returnUndeliverable(env, reason)
			return nil
		}
		if err := s.deliver(env); err != nil {
			p.returnUndeliverable(env, err.Error())
			return nil
		}
		if _, ok := s.(decodingSink); ok {
			env.releaseFrame()
		}
	}
	return nil
}

// decodingSink marks the port sinks that keep only a decoded copy of a
// message's body, so that its frame can be recycled once delivered.
type decodingSink interface{ decodesBody() }

func (*streamSink[T]) decodesBody()   {}
func (*onceSink[T]) decodesBody()     {}
func (*accumSink[T, S]) decodesBody() {}

func (p *Proc) unknownActorReason(id ActorID) string {
	p.mu.Lock()
	reason, ok := p.tombs.get(id)
	p.mu.Unlock()
	if ok {
		return reason
	}
	return fmt.Sprintf("no actor %s on this proc", id)
}

// returnUndeliverable sends env back to its sender's undeliverable port.
// Undeliverables that cannot themselves be delivered are only logged, so a
// fault never loops.
func (p *Proc) returnUndeliverable(env *envelope, reason string) {
	if env.dest.Index == UndeliverablePort || env.sender.IsZero() {
		// The sender is gone (typically stopped during a shutdown) or
		// anonymous: there is nobody left to tell.
		p.log.Debug("undeliverable message abandoned", "from", env.sender, "to", env.dest, "reason", reason)
		return
	}
	u := Undeliverable{Sender: env.sender, Dest: env.dest, Type: env.typeName, Reason: reason, Headers: env.headers}
	if env.local {
		u.Message = env.value
		if u.Type == "" {
			u.Type, _ = MessageTypeName(env.value)
		}
	} else {
		u.Body = env.body
	}
	back := &envelope{sender: env.dest.Actor, dest: env.sender.Port(UndeliverablePort), value: u, local: true}
	if err := p.route(back); err != nil {
		p.log.Warn("undeliverable message abandoned", "from", env.sender, "to", env.dest, "reason", reason, "error", err)
	}
}

// transportUndeliverable turns a channel's failed message back into an
// Undeliverable for the actor that sent it.
func (p *Proc) transportUndeliverable(msg []byte, err error) {
	var env envelope
	derr := env.decodeFrame(msg, func(env *envelope) {
		p.returnUndeliverable(env, err.Error())
	})
	if derr != nil {
		p.log.Error("undeliverable frame could not be decoded", "error", derr)
	}
}

// cellTable indexes a proc's live actors by name and pid; the proc part of
// an id is checked by the caller, so lookups hash less.
type cellTable struct {
	mu sync.RWMutex
	m  map[cellKey]*cell
	// last is the cell found last: a stream's messages all go to one.
	last atomic.Pointer[cell]
}

type cellKey struct {
	name string
	pid  uint64
}

func (t *cellTable) load(id ActorID) *cell {
	t.mu.RLock()
	c := t.m[cellKey{id.Name, id.PID}]
	t.mu.RUnlock()
	return c
}

// loadCached is load through last: for a connection's reader, whose
// messages mostly go to one actor. (Senders within the proc alternate
// between actors, which would only make the cache's line bounce between
// CPUs.)
func (t *cellTable) loadCached(id ActorID) *cell {
	if c := t.last.Load(); c != nil && c.id.PID == id.PID && c.id.Name == id.Name {
		return c
	}
	t.mu.RLock()
	c := t.m[cellKey{id.Name, id.PID}]
	if c != nil {
		t.last.Store(c) // under the lock, so that delete cannot miss it
	}
	t.mu.RUnlock()
	return c
}

func (t *cellTable) store(c *cell) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[cellKey]*cell{}
	}
	t.m[cellKey{c.id.Name, c.id.PID}] = c
	t.mu.Unlock()
}

func (t *cellTable) delete(c *cell) {
	t.mu.Lock()
	if t.m[cellKey{c.id.Name, c.id.PID}] == c {
		delete(t.m, cellKey{c.id.Name, c.id.PID})
	}
	t.last.CompareAndSwap(c, nil)
	t.mu.Unlock()
}

// tombstones remembers why recently stopped actors stopped, so a late
// message gets a precise reason. It is bounded.
type tombstones struct {
	m     map[ActorID]string
	order []ActorID
}

const maxTombstones = 1024

func (t *tombstones) add(id ActorID, reason string) {
	if t.m == nil {
		t.m = map[ActorID]string{}
	}
	if _, ok := t.m[id]; !ok {
		t.order = append(t.order, id)
	}
	t.m[id] = reason
	if len(t.order) > maxTombstones {
		delete(t.m, t.order[0])
		t.order = t.order[1:]
	}
}

func (t *tombstones) get(id ActorID) (string, bool) {
	r, ok := t.m[id]
	return r, ok
}

// deliverInline runs an inline handler. Should it panic after its Relay
// claimed an idle actor, the actor's loop is started elsewhere before the
// panic goes on up: thrown away with the panic, it would leave that actor
// claimed, and never running again.
func deliverInline(s portSink, env *envelope) error {
	defer func() {
		if r := recover(); r != nil {
			if k := env.relayed; k != nil {
				env.relayOK, env.relayed = false, nil
				if d, ok := k.(transport.Dispatcher); ok {
					d.Dispatch()
				} else {
					go k.Continue()
				}
			}
			panic(r)
		}
	}()
	return s.deliver(env)
}
