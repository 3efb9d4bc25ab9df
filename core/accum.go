package core

import (
	"cmp"
	"context"
	"fmt"
	"sync"
)

// Reducer folds values of T into a state S. Init gives the empty state.
type Reducer[T, S any] struct {
	Name   string
	Init   func() S
	Reduce func(acc S, v T) S
}

// Number is what Sum accepts.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// Sum adds the values.
func Sum[T Number]() Reducer[T, T] {
	return Reducer[T, T]{Name: "sum", Init: func() T { return 0 }, Reduce: func(a T, v T) T { return a + v }}
}

// Extreme is a running minimum or maximum; Set is false until a value came.
type Extreme[T any] struct {
	Value T
	Set   bool
}

// Min keeps the smallest value.
func Min[T cmp.Ordered]() Reducer[T, Extreme[T]] {
	return Reducer[T, Extreme[T]]{Name: "min", Init: func() Extreme[T] { return Extreme[T]{} },
		Reduce: func(a Extreme[T], v T) Extreme[T] {
			if !a.Set || v < a.Value {
				return Extreme[T]{Value: v, Set: true}
			}
			return a
		}}
}

// Max keeps the largest value.
func Max[T cmp.Ordered]() Reducer[T, Extreme[T]] {
	return Reducer[T, Extreme[T]]{Name: "max", Init: func() Extreme[T] { return Extreme[T]{} },
		Reduce: func(a Extreme[T], v T) Extreme[T] {
			if !a.Set || v > a.Value {
				return Extreme[T]{Value: v, Set: true}
			}
			return a
		}}
}

// Collect keeps every value in arrival order.
func Collect[T any]() Reducer[T, []T] {
	return Reducer[T, []T]{Name: "collect", Init: func() []T { return nil },
		Reduce: func(a []T, v T) []T { return append(a, v) }}
}

// AccumReceiver holds the reduced state of an accumulating port. Receivers
// see the latest state, not each update: many replies become one value.
type AccumReceiver[S any] struct {
	inst *Instance
	id   PortID

	mu     sync.Mutex
	state  S
	count  int
	seen   int
	closed bool
	reason string
	notify chan struct{}
	// closedCh is closed with the port: it wakes every waiter, where a
	// notify token wakes one.
	closedCh chan struct{}
}

type accumSink[T, S any] struct {
	r      *AccumReceiver[S]
	reduce func(S, T) S
}

func (s *accumSink[T, S]) deliver(env *envelope) error {
	v, err := decodeAs[T](env)
	if err != nil {
		return err
	}
	r := s.r
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("port closed: %s", r.reason)
	}
	r.state = s.reduce(r.state, v)
	r.count++
	r.mu.Unlock()
	r.wake()
	return nil
}

func (s *accumSink[T, S]) close(reason string) {
	r := s.r
	r.mu.Lock()
	if !r.closed {
		r.closed, r.reason = true, reason
		close(r.closedCh)
	}
	r.mu.Unlock()
	r.wake()
}

func (r *AccumReceiver[S]) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// OpenAccumPort opens a port whose values of T are folded by red.
func OpenAccumPort[T, S any](inst *Instance, red Reducer[T, S]) (*PortHandle[T], *AccumReceiver[S]) {
	id := inst.c.id.Port(inst.nextPort())
	r := &AccumReceiver[S]{inst: inst, id: id, state: red.Init(), notify: make(chan struct{}, 1), closedCh: make(chan struct{})}
	sink := &accumSink[T, S]{r: r, reduce: red.Reduce}
	if !inst.c.bindPort(id.Index, sink) {
		sink.close("owner is stopped")
	}
	return &PortHandle[T]{inst: inst, id: id}, r
}

// Recv waits until at least one update arrived since the last Recv and
// returns the state with the number of updates folded in so far.
func (r *AccumReceiver[S]) Recv(ctx context.Context) (S, int, error) {
	for {
		r.mu.Lock()
		if r.count > r.seen {
			r.seen = r.count
			s, n := r.state, r.count
			r.mu.Unlock()
			return s, n, nil
		}
		if r.closed {
			s, n, reason := r.state, r.count, r.reason
			r.mu.Unlock()
			return s, n, &PortClosedError{Reason: reason}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-r.closedCh:
		case <-ctx.Done():
			r.mu.Lock()
			s, n := r.state, r.count
			r.mu.Unlock()
			return s, n, ctx.Err()
		}
	}
}

// Wait waits until n updates have been folded in and returns the state. On
// a deadline it returns the partial state, the count, and the context's error.
func (r *AccumReceiver[S]) Wait(ctx context.Context, n int) (S, int, error) {
	for {
		r.mu.Lock()
		s, c, closed, reason := r.state, r.count, r.closed, r.reason
		r.mu.Unlock()
		if c >= n {
			return s, c, nil
		}
		if closed {
			return s, c, &PortClosedError{Reason: reason}
		}
		select {
		case <-r.notify:
		case <-r.closedCh:
		case <-ctx.Done():
			return s, c, ctx.Err()
		}
	}
}

// Close unbinds the port.
func (r *AccumReceiver[S]) Close() {
	r.inst.c.unbindPort(r.id.Index)
	r.mu.Lock()
	if !r.closed {
		r.closed, r.reason = true, "receiver closed"
		close(r.closedCh)
	}
	r.mu.Unlock()
	r.wake()
}
