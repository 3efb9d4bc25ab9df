package core

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormesh/actormesh/transport"
)

// envelope is a message in flight. Within a proc it carries the Go value
// (local=true); from the wire it carries the msgpack body instead.
type envelope struct {
	kind  uint8
	local bool
	// shared is set when body lies in a frame with other messages (a
	// batch): decoding copies out of it rather than point into it, so
	// that a value kept does not keep the others' bytes alive.
	shared   bool
	sender   ActorID
	dest     PortID
	typeName string
	mtype    *msgType // typeName's registration, when decoded from the wire
	headers  map[string]string
	value    any
	body     []byte
	// frame is the whole received message that body points into, when it
	// is a transport buffer this proc may recycle (see releaseFrame).
	frame []byte
	// relayOK is set while a connection's reader delivers env to an
	// inline handler, which may then leave one idle local actor's loop in
	// relayed for the reader to run (InlineMessage.Relay).
	relayOK bool
	relayed transport.Continuation
	// relayedFrame is set once an inline handler's Relay took frame, and
	// body with it, to a local actor (see InlineMessage.Relay).
	relayedFrame bool
}

// releaseFrame gives the received frame back to the transport's buffer
// pool. Call it only once nothing aliases the frame any more: after the
// body has been decoded (msgpack copies bytes and strings out) and the
// envelope will not go back as undeliverable, nor be kept raw (raw ports,
// inline handlers, forwards keep env.body).
func (env *envelope) releaseFrame() {
	if env.frame != nil {
		transport.ReleaseBuffer(env.frame)
		env.frame, env.body = nil, nil
	}
}

// decodeMessage decodes a received message. A frame from the transport's pool
// is copied out of and recycled: fresh buffers cost more than the copy
// (they are zeroed, and make the collector run far more often). Byte
// slices in a message may keep pointing into any other frame, which is
// then the message's; Buffers may keep pointing into a pooled one, which
// then goes back to the pool when they are released.
func (env *envelope) decodeMessage() (any, error) {
	t := env.mtype
	if t == nil {
		var ok bool
		if t, ok = lookupMessageType(env.typeName); !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownMessageType, env.typeName)
		}
	}
	if env.shared {
		m, _, err := t.decode(env.body, false)
		return m, err
	}
	pooled := transport.Pooled(env.frame)
	if t.borrows {
		if !pooled {
			return t.decodeLent(env.body, nil)
		}
		m, err := t.decodeLent(env.body, env.frame)
		if err == nil {
			env.frame, env.body = nil, nil // the lease's now
		}
		return m, err
	}
	m, aliased, err := t.decode(env.body, !pooled)
	if err == nil && !aliased {
		env.releaseFrame()
	}
	return m, err
}

type workKind uint8

const (
	workMessage workKind = iota
	workUndeliverable
	workSupervision
	// workBatch is the messages of a received batch (batch.go): env.body
	// holds the bodies not handled yet, one bin each, and handle takes
	// one per visit.
	workBatch
)

// work is held by value in the queue, so a local send allocates nothing
// beyond what the message itself needs.
type work struct {
	kind workKind
	env  envelope
	msg  any // decoded message, undeliverable or supervision event
}

// How long a stopping actor waits for its children before it moves on.
const childStopTimeout = 2 * time.Second

// cell is one actor's (or client instance's) mailbox and lifecycle. Actors
// have no goroutine while idle: the first message into an empty queue
// starts one that drains the queue and exits, so an idle actor costs only
// its memory.
type cell struct {
	proc   *Proc
	id     ActorID
	actor  Actor // nil for client instances
	inst   *Instance
	parent *cell
	root   *rootEntry
	cx     Context // reused for each message: handlers run one at a time
	// cur holds the work being handled when it is not in batch: a
	// supervision event, or one message of a received batch.
	cur work

	mu          sync.Mutex
	queue       []work // filled by senders; the loop swaps it for batch
	sup         []work // supervision events jump the queue
	running     bool
	stopMode    int // 0 none, stopDrain, stopNow
	stopReason  string
	closed      bool // no new messages are accepted
	closeReason string
	children    map[uint64]*cell
	ports       map[uint64]portSink
	portsClosed bool // closePorts ran: no port binds any more

	// Read by the loop without the lock, so that a busy actor takes the
	// lock once per batch rather than once per message.
	supPending atomic.Int32
	stopping   atomic.Bool // stopMode == stopNow

	// Owned by the running loop (there is at most one): the messages it
	// took from queue in one swap, and the next one to handle.
	batch []work
	bi    int

	// batchKey is the key of the last message this cell sent that could
	// be batched with later ones; batchLast* (under batchMu, as a client
	// instance may send from several goroutines at once) are the port and
	// type of the last one it sent without a key (see batchKeyFor).
	batchKey      atomic.Pointer[batchKey]
	batchMu       sync.Mutex
	batchLastDest PortID
	batchLastType *msgType

	status atomic.Int32
	done   chan struct{}
	final  *SupervisionEvent
}

const (
	stopDrain = 1
	stopNow   = 2
)

func (c *cell) loadStatus() Status { return Status(c.status.Load()) }

func (c *cell) isRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// enqueue adds work for the actor loop, starting the loop if it is idle.
// It returns false if the mailbox is closed.
func (c *cell) enqueue(w work) (ok bool, reason string) {
	ok, reason, _ = c.enqueueClaim(w, false)
	return ok, reason
}

// enqueueClaim is enqueue that, with claim, does not start a worker for an
// idle actor but reports claimed: the caller then runs the actor's loop
// (Continue) itself.
func (c *cell) enqueueClaim(w work, claim bool) (ok bool, reason string, claimed bool) {
	c.mu.Lock()
	if c.closed && w.kind != workSupervision {
		reason = c.closeReason
		c.mu.Unlock()
		return false, reason, false
	}
	if w.kind == workSupervision {
		if c.loadStatus().Terminal() {
			c.mu.Unlock()
			return false, "parent already stopped", false
		}
		c.sup = append(c.sup, w)
		c.supPending.Add(1)
	} else {
		c.queue = append(c.queue, w)
	}
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		if claim {
			return true, "", true
		}
		c.proc.workers.start(c, false)
	}
	return true, "", false
}

// stop asks the actor to stop; drain=true handles what is queued first.
// New messages are refused from now on either way.
func (c *cell) stop(reason string, drain bool) {
	if c.actor == nil {
		c.proc.stopClient(c, reason)
		return
	}
	c.mu.Lock()
	mode := stopNow
	if drain {
		mode = stopDrain
	}
	if c.stopMode == stopNow || (c.stopMode == stopDrain && mode == stopDrain) || c.loadStatus().Terminal() {
		c.mu.Unlock()
		return
	}
	c.stopMode = mode
	c.stopping.Store(mode == stopNow)
	c.stopReason = reason
	if !c.closed {
		c.closed = true
		c.closeReason = fmt.Sprintf("actor %s is stopping: %s", c.id, reason)
	}
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		c.proc.workers.start(c, false)
	}
}

// next takes the next work item, or reports that the loop should stop or
// go idle.
// The item is returned in place (in batch, or cur) rather than
// copied, and is the loop's to clear once handled.
func (c *cell) next() (w *work, stop bool, idle bool) {
	if c.stopping.Load() {
		return nil, true, false
	}
	if c.supPending.Load() > 0 {
		c.mu.Lock()
		if len(c.sup) > 0 {
			c.cur = c.sup[0]
			c.sup[0] = work{}
			c.sup = c.sup[1:]
			c.supPending.Add(-1)
			c.mu.Unlock()
			return &c.cur, false, false
		}
		c.mu.Unlock()
	}
	if c.bi == len(c.batch) {
		c.mu.Lock()
		if c.stopMode == stopNow {
			c.mu.Unlock()
			return nil, true, false
		}
		if len(c.queue) == 0 {
			mode := c.stopMode
			c.mu.Unlock()
			return nil, mode == stopDrain, mode != stopDrain
		}
		c.batch, c.queue = c.queue, c.batch[:0]
		c.bi = 0
		c.mu.Unlock()
	}
	w = &c.batch[c.bi]
	c.bi++
	return w, false, false
}

func (c *cell) goIdle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 || len(c.sup) > 0 || c.stopMode != 0 {
		return false
	}
	c.running = false
	// An idle actor should not pin a burst's buffers.
	if cap(c.queue) > 256 {
		c.queue = nil
	}
	if cap(c.batch) > 256 {
		c.batch = nil
	}
	c.batch, c.bi = c.batch[:0], 0
	return true
}

// Continue runs the loop of an actor claimed by enqueueClaim, on the
// delivering goroutine.
func (c *cell) Continue() { c.runLoop(false, false) }

// Dispatch runs the loop of an actor claimed by enqueueClaim on a worker.
func (c *cell) Dispatch() { c.proc.workers.start(c, false) }

func (c *cell) run(initialize bool) { c.runLoop(initialize, true) }

// runLoop is the actor loop. It exits when the queue is empty (the next enqueue
// starts a new one) or when the actor terminates.
// With yield, the loop yields once before it goes idle.
func (c *cell) runLoop(initialize, yield bool) {
	if initialize {
		c.status.Store(int32(StatusInitializing))
		if in, ok := c.actor.(Initializer); ok {
			c.cx.env = nil
			if err := c.invoke(func() error { return in.Init(&c.cx) }); err != nil {
				c.terminate(fmt.Errorf("initialization error: %w", err), nil)
				return
			}
		}
		c.status.Store(int32(StatusIdle))
	}
	yielded := false
	for {
		w, stop, idle := c.next()
		if stop {
			c.terminate(nil, nil)
			return
		}
		if idle {
			// One yield before parking lets a peer we just messaged answer
			// without this actor paying for a new goroutine.
			if yield && !yielded {
				yielded = true
				runtime.Gosched()
				continue
			}
			if c.goIdle() {
				return
			}
			continue
		}
		yielded = false
		c.status.Store(int32(StatusProcessing))
		cause, err := c.handle(w)
		if w.kind != workBatch || len(w.env.body) == 0 {
			*w = work{} // else the batch's rest, to be visited again
		}
		if err != nil {
			c.terminate(err, cause)
			return
		}
		c.status.Store(int32(StatusIdle))
	}
}

// panicError is a recovered panic as an actor failure.
type panicError struct {
	value string
	stack string
}

func (e *panicError) Error() string { return "panic: " + e.value }

// invoke runs a callback of the actor, turning a panic into a *panicError.
func (c *cell) invoke(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: fmt.Sprint(r), stack: string(debug.Stack())}
		}
	}()
	return f()
}

// handle runs one work item. A non-nil error fails the actor; cause is the
// child's event when the failure is an unhandled supervision event.
func (c *cell) handle(w *work) (cause *SupervisionEvent, err error) {
	if w.kind == workBatch {
		return c.handleFromBatch(w)
	}
	c.cx.env = &w.env
	defer func() { c.cx.env = nil }()
	switch w.kind {
	case workMessage:
		msg := w.msg
		if !w.env.local {
			// A frame from the transport's pool is copied out of and
			// recycled: fresh buffers cost more than the copy (they are
			// zeroed, and make the collector run far more often). Byte
			// slices in a message may keep pointing into any other frame,
			// which is then the message's.
			m, err := w.env.decodeMessage()
			if err != nil {
				c.proc.returnUndeliverable(&w.env, err.Error())
				return nil, nil
			}
			msg = m
		}
		return nil, c.invoke(func() error { return c.actor.Handle(&c.cx, msg) })
	case workUndeliverable:
		u := w.msg.(Undeliverable)
		if h, ok := c.actor.(UndeliverableHandler); ok {
			return nil, c.invoke(func() error { return h.HandleUndeliverable(&c.cx, u) })
		}
		c.proc.log.Warn("undeliverable message returned to actor", "actor", c.id, "dest", u.Dest, "type", u.Type, "reason", u.Reason)
		return nil, nil
	case workSupervision:
		ev := w.msg.(SupervisionEvent)
		c.removeChild(ev.Actor.PID)
		handled := !ev.Failed()
		var err error
		if h, ok := c.actor.(SupervisionHandler); ok {
			err = c.invoke(func() error {
				var herr error
				handled, herr = h.HandleSupervision(&c.cx, ev)
				return herr
			})
			var pe *panicError
			if err != nil && !errors.As(err, &pe) {
				err = fmt.Errorf("error while handling supervision event from %s: %w", ev.Actor, err)
			}
		}
		if err == nil && !handled {
			err = fmt.Errorf("unhandled supervision event: %s", ev)
		}
		if err != nil {
			return &ev, err
		}
		return nil, nil
	}
	return nil, fmt.Errorf("core: unknown work kind %d", w.kind)
}

// handleFromBatch handles the first message of a batch, w, which next
// returned: if others remain, w goes back to be returned again, so that
// stops and supervision events come between the batch's messages as
// between any others.
func (c *cell) handleFromBatch(w *work) (*SupervisionEvent, error) {
	one := &c.cur
	one.kind, one.env = workMessage, w.env
	one.env.body, w.env.body = firstBin(w.env.body)
	if len(w.env.body) > 0 {
		c.bi-- // w is c.batch[c.bi-1]: only next returns batches
	}
	defer func() { *one = work{} }()
	return c.handle(one)
}

// batchMessages calls each for every message of a batch work item.
func (w *work) batchMessages(each func(env *envelope)) {
	env := w.env
	for rest := w.env.body; len(rest) > 0; {
		env.body, rest = firstBin(rest)
		each(&env)
	}
}

func (c *cell) removeChild(pid uint64) {
	c.mu.Lock()
	delete(c.children, pid)
	c.mu.Unlock()
}

// terminate runs the teardown once: refuse new messages, bounce the queue,
// stop children, clean up, close ports, then report the event before
// publishing the terminal status so that nobody observes "stopped" without
// the event having been sent.
func (c *cell) terminate(failure error, cause *SupervisionEvent) {
	failed := failure != nil
	c.status.Store(int32(StatusStopping))

	c.mu.Lock()
	reason := c.stopReason
	if reason == "" {
		reason = "stopped"
	}
	c.closed = true
	if failed {
		c.closeReason = fmt.Sprintf("actor %s failed", c.id)
	} else {
		c.closeReason = fmt.Sprintf("actor %s stopped: %s", c.id, reason)
	}
	pending := make([]work, 0, len(c.batch)-c.bi+len(c.queue))
	pending = append(append(pending, c.batch[c.bi:]...), c.queue...)
	c.batch, c.bi, c.queue = nil, 0, nil
	// A child's failure still waiting to be handled is not dropped in
	// silence: it becomes the cause of this actor's own event.
	var unhandled *SupervisionEvent
	for _, w := range c.sup {
		if ev, ok := w.msg.(SupervisionEvent); ok && ev.Failed() && unhandled == nil {
			unhandled = &ev
		}
	}
	c.sup = nil
	c.supPending.Store(0)
	children := make([]*cell, 0, len(c.children))
	for _, ch := range c.children {
		children = append(children, ch)
	}
	closeReason := c.closeReason
	c.mu.Unlock()

	for _, w := range pending {
		switch w.kind {
		case workMessage:
			c.proc.returnUndeliverable(&w.env, closeReason+" before handling the message")
		case workBatch:
			w.batchMessages(func(env *envelope) {
				c.proc.returnUndeliverable(env, closeReason+" before handling the message")
			})
		}
	}

	childReason := "parent stopping"
	if failed {
		childReason = "parent failed"
	}
	for _, ch := range children {
		ch.stop(childReason, false)
	}
	deadline := time.NewTimer(childStopTimeout)
	for _, ch := range children {
		select {
		case <-ch.done:
		case <-deadline.C:
			c.proc.log.Warn("child did not stop in time", "actor", c.id, "child", ch.id)
		}
	}
	deadline.Stop()

	if cl, ok := c.actor.(Cleaner); ok {
		if cerr := c.invoke(func() error { return cl.Cleanup(&c.cx, failure) }); cerr != nil && !failed {
			failed = true
			failure = fmt.Errorf("cleanup error: %w", cerr)
		}
	}

	c.closePorts(closeReason)

	if cause == nil && unhandled != nil {
		c.proc.log.Error("child failure not handled before its parent ended", "actor", c.id, "child", unhandled.Actor, "event", unhandled.String())
		cause = unhandled
	}
	ev := SupervisionEvent{Actor: c.id, Status: StatusStopped, Reason: reason, Time: time.Now(), Cause: cause}
	if failed {
		ev.Status = StatusFailed
		ev.Err = failure.Error()
		var pe *panicError
		if errors.As(failure, &pe) {
			ev.Panic, ev.Stack = pe.value, pe.stack
		}
	}
	c.final = &ev
	c.proc.unregister(c)
	if c.parent != nil {
		if ok, _ := c.parent.enqueue(work{kind: workSupervision, msg: ev}); !ok {
			c.parent.removeChild(c.id.PID)
		}
	} else {
		c.proc.supervise(ev)
	}
	c.status.Store(int32(ev.Status))
	close(c.done)
}

func (c *cell) closePorts(reason string) {
	c.mu.Lock()
	ports := c.ports
	c.ports = nil
	c.portsClosed = true // before the terminal status: see bindPort
	c.mu.Unlock()
	for _, s := range ports {
		s.close(reason)
	}
}

func (c *cell) bindPort(idx uint64, s portSink) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed && c.actor == nil {
		return false
	}
	if c.portsClosed || c.loadStatus().Terminal() {
		return false
	}
	if c.ports == nil {
		c.ports = map[uint64]portSink{}
	}
	c.ports[idx] = s
	return true
}

func (c *cell) unbindPort(idx uint64) {
	c.mu.Lock()
	delete(c.ports, idx)
	c.mu.Unlock()
}

func (c *cell) port(idx uint64) (portSink, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.ports[idx]
	if !ok {
		if c.closed {
			return nil, c.closeReason
		}
		return nil, fmt.Sprintf("port %d is not bound (closed or never opened) on %s", idx, c.id)
	}
	return s, ""
}
