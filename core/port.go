package core

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actormesh/actormesh/internal/codec"
	"github.com/actormesh/actormesh/internal/spin"
	"github.com/actormesh/actormesh/transport"
	"github.com/vmihailenco/msgpack/v5"
)

// portSink is where a bound port's messages go.
type portSink interface {
	// deliver accepts a message; an error makes it undeliverable with that reason.
	deliver(env *envelope) error
	close(reason string)
}

// decodeAs turns an envelope's payload into T.
func decodeAs[T any](env *envelope) (T, error) {
	var v T
	if env.local {
		if env.value == nil {
			return v, nil
		}
		t, ok := env.value.(T)
		if !ok {
			return v, fmt.Errorf("port expects %T, message is %T", v, env.value)
		}
		return t, nil
	}
	t := reflect.TypeFor[T]()
	if transport.Pooled(env.frame) && typeHoldsBuffer(t) {
		lease := newFrameLease(env.frame)
		if err := codec.Of(t).UnmarshalLent(env.body, unsafe.Pointer(&v), lease); err != nil {
			return v, fmt.Errorf("cannot decode message as %T: %v", v, err)
		}
		env.frame, env.body = nil, nil // the lease's now
		lease.drop()
		return v, nil
	}
	if _, err := codec.Of(t).Unmarshal(env.body, unsafe.Pointer(&v), false); err != nil {
		return v, fmt.Errorf("cannot decode message as %T: %v", v, err)
	}
	return v, nil
}

// PortRef is a serialisable reference to a port that accepts T. It can be
// put inside messages; whoever holds it can send to the port.
type PortRef[T any] struct {
	ID PortID
}

// Send sends msg to the port.
func (r PortRef[T]) Send(s Sender, msg T) error {
	return s.instance().post(r.ID, msg, nil)
}

func (r PortRef[T]) String() string { return r.ID.String() }

func (r PortRef[T]) EncodeMsgpack(enc *msgpack.Encoder) error { return r.ID.EncodeMsgpack(enc) }

func (r *PortRef[T]) DecodeMsgpack(dec *msgpack.Decoder) error { return r.ID.DecodeMsgpack(dec) }

// queue is an unbounded FIFO with a wake-up channel, the receiving side of
// a port.
type queue[T any] struct {
	mu       sync.Mutex
	items    []T
	head     int
	closed   bool
	reason   string
	notify   chan struct{}
	closedCh chan struct{} // closed by close: wakes every waiter
	// wakeAt is how many queued items make a push signal notify (see
	// PortReceiver.NotifyAfter); zero means one.
	wakeAt int
	// hook, if set, runs after every push and on close (see
	// RawReceiver.OnDeliver).
	hook atomic.Pointer[func()]
	// limit, if set, bounds the queue: a push beyond it drops the oldest
	// item and calls onDrop with the number dropped so far.
	limit   int
	dropped int
	onDrop  func(dropped int)
}

func (q *queue[T]) runHook() {
	if h := q.hook.Load(); h != nil {
		(*h)()
	}
}

func newQueue[T any]() *queue[T] {
	return &queue[T]{notify: make(chan struct{}, 1), closedCh: make(chan struct{})}
}

func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	var drop func(int)
	if q.limit > 0 && len(q.items)-q.head >= q.limit {
		var zero T
		q.items[q.head] = zero
		q.head++
		if q.head >= q.limit { // keep the backing array from growing
			n := copy(q.items, q.items[q.head:])
			clear(q.items[n:])
			q.items, q.head = q.items[:n], 0
		}
		q.dropped++
		drop = q.onDrop
	}
	q.items = append(q.items, v)
	wake := len(q.items)-q.head >= q.wakeAt
	dropped := q.dropped
	q.mu.Unlock()
	if drop != nil {
		drop(dropped)
	}
	if wake {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	q.runHook()
	return true
}

// notifyAfter makes pushes signal notify only once n items are queued.
func (q *queue[T]) notifyAfter(n int) <-chan struct{} {
	q.mu.Lock()
	q.wakeAt = n
	ready := len(q.items)-q.head >= n || q.closed
	q.mu.Unlock()
	if ready {
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	return q.notify
}

func (q *queue[T]) close(reason string) {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		q.reason = reason
		close(q.closedCh)
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	q.runHook()
}

func (q *queue[T]) tryPop() (v T, ok bool, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head < len(q.items) {
		v = q.items[q.head]
		var zero T
		q.items[q.head] = zero
		q.head++
		if q.head == len(q.items) {
			q.items = q.items[:0]
			q.head = 0
		}
		return v, true, nil
	}
	if q.closed {
		return v, false, &PortClosedError{Reason: q.reason}
	}
	return v, false, nil
}

func (q *queue[T]) pop(ctx context.Context) (T, error) {
	for {
		v, ok, err := q.tryPop()
		if ok || err != nil {
			return v, err
		}
		spin.Until(spin.Duration(), func() bool { return len(q.notify) != 0 })
		select {
		case <-q.notify:
		case <-q.closedCh:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// ErrPortClosed is matched (errors.Is) by the error a receiver returns once
// its port is closed and drained.
var ErrPortClosed = errors.New("core: port closed")

// PortClosedError says why a port was closed.
type PortClosedError struct{ Reason string }

func (e *PortClosedError) Error() string {
	if e.Reason == "" {
		return ErrPortClosed.Error()
	}
	return ErrPortClosed.Error() + ": " + e.Reason
}

func (e *PortClosedError) Is(target error) bool { return target == ErrPortClosed }

// PortHandle is the owner's side of a port: it binds the port's reference
// and can send into the port locally.
type PortHandle[T any] struct {
	inst *Instance
	id   PortID
}

// Bind returns the port's reference, which may travel in messages.
func (h *PortHandle[T]) Bind() PortRef[T] { return PortRef[T]{ID: h.id} }

// ID is the port's id.
func (h *PortHandle[T]) ID() PortID { return h.id }

// Send posts msg into the port from its owner.
func (h *PortHandle[T]) Send(msg T) error { return h.inst.post(h.id, msg, nil) }

// PortReceiver receives a streaming port's messages in order. It is for
// one receiving goroutine at a time: a wake-up for a message goes to one
// waiter, though closing the port wakes every one.
type PortReceiver[T any] struct {
	inst *Instance
	id   PortID
	q    *queue[fromSender[T]]
}

// fromSender is a received value with the actor that sent it.
type fromSender[T any] struct {
	v    T
	from ActorID
}

type streamSink[T any] struct{ q *queue[fromSender[T]] }

func (s *streamSink[T]) deliver(env *envelope) error {
	v, err := decodeAs[T](env)
	if err != nil {
		return err
	}
	if !s.q.push(fromSender[T]{v: v, from: env.sender}) {
		return fmt.Errorf("port closed: %s", s.q.reason)
	}
	return nil
}

func (s *streamSink[T]) close(reason string) { s.q.close(reason) }

// OpenPort opens a streaming port on inst: every message sent to it is
// received, in order per sender.
func OpenPort[T any](inst *Instance) (*PortHandle[T], *PortReceiver[T]) {
	id := inst.c.id.Port(inst.nextPort())
	q := newQueue[fromSender[T]]()
	if !inst.c.bindPort(id.Index, &streamSink[T]{q: q}) {
		q.close("owner is stopped")
	}
	return &PortHandle[T]{inst: inst, id: id}, &PortReceiver[T]{inst: inst, id: id, q: q}
}

// Recv waits for the next message. After Close, or once the owner stopped,
// it drains what was queued and then returns an error matching ErrPortClosed.
func (r *PortReceiver[T]) Recv(ctx context.Context) (T, error) {
	m, err := r.q.pop(ctx)
	return m.v, err
}

// RecvFrom is Recv that also says which actor sent the message.
func (r *PortReceiver[T]) RecvFrom(ctx context.Context) (T, ActorID, error) {
	m, err := r.q.pop(ctx)
	return m.v, m.from, err
}

// TryRecv returns the next message if one is queued.
func (r *PortReceiver[T]) TryRecv() (T, bool, error) {
	m, ok, err := r.q.tryPop()
	return m.v, ok, err
}

// TryRecvFrom is TryRecv that also says which actor sent the message.
func (r *PortReceiver[T]) TryRecvFrom() (T, ActorID, bool, error) {
	m, ok, err := r.q.tryPop()
	return m.v, m.from, ok, err
}

// ID is the port's id.
func (r *PortReceiver[T]) ID() PortID { return r.id }

// Notify returns a channel that has a value whenever messages may be
// waiting, for select loops. Use TryRecv after it fires.
func (r *PortReceiver[T]) Notify() <-chan struct{} { return r.q.notify }

// NotifyAfter is Notify for a receiver that waits for n messages: the
// channel is signalled once n are queued (or the port closes), not for
// each one, which spares the receiving goroutine a wake-up per message.
// It holds until the next call; NotifyAfter(1) restores Notify's rule.
func (r *PortReceiver[T]) NotifyAfter(n int) <-chan struct{} { return r.q.notifyAfter(n) }

// Closed reports whether the receiver was closed, or its owner stopped:
// whether messages sent to the port from now on come back undeliverable.
func (r *PortReceiver[T]) Closed() bool {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	return r.q.closed
}

// Close unbinds the port; later messages to it come back undeliverable.
func (r *PortReceiver[T]) Close() {
	r.inst.c.unbindPort(r.id.Index)
	r.q.close("receiver closed")
}

// OnceReceiver receives the single message of a once port.
type OnceReceiver[T any] struct {
	inst *Instance
	id   PortID
	q    *queue[T]
}

type onceSink[T any] struct {
	c    *cell
	idx  uint64
	used atomic.Bool
	q    *queue[T]
}

func (s *onceSink[T]) deliver(env *envelope) error {
	v, err := decodeAs[T](env)
	if err != nil {
		return err
	}
	if !s.used.CompareAndSwap(false, true) {
		return errors.New("once port already received its message")
	}
	s.c.unbindPort(s.idx)
	if !s.q.push(v) {
		return fmt.Errorf("port closed: %s", s.q.reason)
	}
	s.q.close("once port delivered its message")
	return nil
}

func (s *onceSink[T]) close(reason string) { s.q.close(reason) }

// OpenOncePort opens a port that accepts exactly one message; later ones
// come back undeliverable.
func OpenOncePort[T any](inst *Instance) (*PortHandle[T], *OnceReceiver[T]) {
	id := inst.c.id.Port(inst.nextPort())
	q := newQueue[T]()
	if !inst.c.bindPort(id.Index, &onceSink[T]{c: inst.c, idx: id.Index, q: q}) {
		q.close("owner is stopped")
	}
	return &PortHandle[T]{inst: inst, id: id}, &OnceReceiver[T]{inst: inst, id: id, q: q}
}

// Recv waits for the message.
func (r *OnceReceiver[T]) Recv(ctx context.Context) (T, error) { return r.q.pop(ctx) }

// Close unbinds the port without waiting.
func (r *OnceReceiver[T]) Close() {
	r.inst.c.unbindPort(r.id.Index)
	r.q.close("receiver closed")
}

// RawMessage is a message as a foreign host sees it: the registered type
// name (empty for untyped port values), the msgpack body and the sender.
type RawMessage struct {
	Type   string
	Body   []byte
	Sender ActorID
}

// RawReceiver receives a raw port's messages, in order.
type RawReceiver struct {
	inst *Instance
	id   PortID
	q    *queue[RawMessage]
}

type rawSink struct{ q *queue[RawMessage] }

func (s *rawSink) deliver(env *envelope) error {
	m := RawMessage{Type: env.typeName, Body: env.body, Sender: env.sender}
	if env.local {
		// A value from this proc is encoded here, so that a raw port looks
		// the same whoever sent to it.
		body, err := msgpackMarshal(env.value)
		if err != nil {
			return fmt.Errorf("cannot encode %T for a raw port: %v", env.value, err)
		}
		m.Body = body
		if m.Type == "" {
			m.Type, _ = MessageTypeName(env.value)
		}
	}
	if !s.q.push(m) {
		return fmt.Errorf("port closed: %s", s.q.reason)
	}
	return nil
}

func (s *rawSink) close(reason string) { s.q.close(reason) }

// OpenRawPort opens a port that accepts any message and hands it over
// encoded: the receiving side of a foreign (C, Python) host. A PortRef of
// any type may point at it.
func OpenRawPort(inst *Instance, once bool) (PortID, *RawReceiver) {
	id := inst.c.id.Port(inst.nextPort())
	q := newQueue[RawMessage]()
	var sink portSink = &rawSink{q: q}
	if once {
		sink = &onceRawSink{rawSink: rawSink{q: q}, c: inst.c, idx: id.Index}
	}
	if !inst.c.bindPort(id.Index, sink) {
		q.close("owner is stopped")
	}
	return id, &RawReceiver{inst: inst, id: id, q: q}
}

type onceRawSink struct {
	rawSink
	c    *cell
	idx  uint64
	used atomic.Bool
}

func (s *onceRawSink) deliver(env *envelope) error {
	if !s.used.CompareAndSwap(false, true) {
		return errors.New("once port already received its message")
	}
	s.c.unbindPort(s.idx)
	err := s.rawSink.deliver(env)
	s.q.close("once port delivered its message")
	return err
}

// ID is the port's id.
func (r *RawReceiver) ID() PortID { return r.id }

// Recv waits for the next message.
func (r *RawReceiver) Recv(ctx context.Context) (RawMessage, error) { return r.q.pop(ctx) }

// TryRecv returns the next message if one is queued.
func (r *RawReceiver) TryRecv() (RawMessage, bool, error) { return r.q.tryPop() }

// Notify has a value whenever messages may be waiting.
func (r *RawReceiver) Notify() <-chan struct{} { return r.q.notify }

// OnDeliver makes f run on the delivering goroutine after each message is
// queued, and when the port closes: a foreign host can wake its own
// waiter (an eventfd, say) without a goroutine of ours in between. f must
// be quick and must not block; nil removes it. f may still run once after
// it is removed, if a delivery was under way.
func (r *RawReceiver) OnDeliver(f func()) {
	if f == nil {
		r.q.hook.Store(nil)
		return
	}
	r.q.hook.Store(&f)
}

// Close unbinds the port.
func (r *RawReceiver) Close() {
	r.inst.c.unbindPort(r.id.Index)
	r.q.close("receiver closed")
}
