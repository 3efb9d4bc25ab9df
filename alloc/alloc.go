// Package alloc allocates procs, one per rank of an Extent, and runs the
// bootstrap protocol by which a freshly started OS process becomes a proc.
//
// An Allocator turns a Spec into an Alloc at once, starting nothing. The
// caller drives the Alloc with Next, which starts the procs and yields one
// event stream: per rank Created, then Running, and eventually Stopped; a
// Failed event means the whole allocation failed and must be stopped.
package alloc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"syscall"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// ErrDone is returned by Alloc.Next once the allocation was stopped and
// every event has been consumed, like io.EOF.
var ErrDone = errors.New("alloc: allocation stopped and drained")

// Spec describes what to allocate.
type Spec struct {
	// Extent gives the shape; one proc per rank.
	Extent Extent
	// Constraints are labels the allocator may match on (unused by the
	// local and process allocators).
	Constraints map[string]string
	// ProcName, when set, names every proc instead of "{allocname}_{rank}".
	ProcName string
	// Transport is what the procs serve (default Unix).
	Transport transport.Transport
}

// Allocator creates allocations.
type Allocator interface {
	// Allocate returns an Alloc at once; nothing starts until Next.
	Allocate(ctx context.Context, spec Spec) (Alloc, error)
}

// Alloc is one allocation. Next, Stop and StopAndWait may be called from
// different goroutines, but Next from one goroutine at a time.
type Alloc interface {
	// Next returns the next event, starting the procs on the first call.
	// It returns ErrDone once the allocation is stopped and drained.
	Next(ctx context.Context) (Event, error)
	// Stop starts an orderly stop and returns at once.
	Stop()
	// StopAndWait stops and consumes events until ErrDone.
	StopAndWait(ctx context.Context) error
	Extent() Extent
	Name() string
	Spec() Spec
}

// Event is one of Created, Running, Stopped and Failed.
type Event interface{ isEvent() }

// Created says a rank's proc is being started (its OS process exists).
type Created struct {
	Key   string
	Point Point
	PID   int
}

// Running says a rank's proc is up and its agent is reachable.
type Running struct {
	Key    string
	ProcID core.ProcID
	Agent  core.ActorID
	// Addr is where the proc's actors are reached (ProcID.Addr).
	Addr transport.Addr
}

// Stopped says a rank's proc is gone. It is never restarted.
type Stopped struct {
	Key    string
	Reason StopReason
}

// Failed says the whole allocation failed; the caller must stop it.
type Failed struct {
	Description string
}

func (Created) isEvent() {}
func (Running) isEvent() {}
func (Stopped) isEvent() {}
func (Failed) isEvent()  {}

func (e Created) String() string {
	return fmt.Sprintf("created %s point {%s} pid %d", e.Key, e.Point, e.PID)
}
func (e Running) String() string {
	return fmt.Sprintf("running %s proc %s agent %s", e.Key, e.ProcID, e.Agent)
}
func (e Stopped) String() string { return fmt.Sprintf("stopped %s: %s", e.Key, e.Reason) }
func (e Failed) String() string  { return "allocation failed: " + e.Description }

// StopKind classifies a StopReason.
type StopKind int

const (
	StopUnknown  StopKind = iota
	StopClean             // exited with code 0
	StopExited            // exited with a non-zero code
	StopKilled            // killed by a signal
	StopWatchdog          // the allocator killed it: no hello, or no exit after a stop
)

// StopReason says why a proc stopped.
type StopReason struct {
	Kind StopKind
	// Code is the exit code (StopClean, StopExited).
	Code int
	// Signal is the killing signal (StopKilled, and StopWatchdog when a
	// signal ended the process), CoreDumped whether it dumped core.
	Signal     syscall.Signal
	CoreDumped bool
	// Watchdog says which watchdog fired: "hello timeout" or "stop timeout".
	Watchdog string
	// Detail is free text for StopUnknown (or extra context).
	Detail string
	// Tail holds the last lines the process wrote to stderr.
	Tail []string
}

// Clean reports whether the proc exited with code 0 on its own.
func (r StopReason) Clean() bool { return r.Kind == StopClean }

func (r StopReason) String() string {
	var s string
	switch r.Kind {
	case StopClean:
		s = "exited cleanly"
	case StopExited:
		s = fmt.Sprintf("exited with code %d", r.Code)
	case StopKilled:
		s = "killed by signal " + signalText(r.Signal, r.CoreDumped)
	case StopWatchdog:
		s = "killed by the allocator's watchdog (" + r.Watchdog + ")"
		if r.Signal != 0 {
			s += ", ended by signal " + signalText(r.Signal, r.CoreDumped)
		}
	default:
		s = "stopped for an unknown reason"
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	if len(r.Tail) > 0 && r.Kind != StopClean {
		s += "; stderr tail:\n" + strings.Join(r.Tail, "\n")
	}
	return s
}

func signalText(sig syscall.Signal, core bool) string {
	s := fmt.Sprintf("%d (%s)", int(sig), sig)
	if core {
		s += ", core dumped"
	}
	return s
}

// base58 is the Flickr alphabet, which Monarch's short ids use.
const base58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

// shortID returns 64 random bits as 11–12 base58 characters, with a
// leading '_' when it starts with a digit, so it is a valid proc name.
func shortID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	n := new(big.Int).SetBytes(b[:])
	base := big.NewInt(58)
	var out []byte
	mod := new(big.Int)
	for n.Sign() > 0 {
		n.DivMod(n, base, mod)
		out = append(out, base58[mod.Int64()])
	}
	for len(out) < 12 {
		out = append(out, base58[0])
	}
	if out[0] >= '0' && out[0] <= '9' {
		return "_" + string(out)
	}
	return string(out)
}

// procName is the name the allocator gives rank's proc.
func procName(spec Spec, allocName string, rank int) string {
	if spec.ProcName != "" {
		return spec.ProcName
	}
	return fmt.Sprintf("%s_%d", allocName, rank)
}

// eventQueue is the unbounded event stream behind Next: producers never
// block, and closing it means no more events will come.
type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	closed bool
	notify chan struct{}
}

func newEventQueue() *eventQueue {
	return &eventQueue{notify: make(chan struct{}, 1)}
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, ev)
	}
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *eventQueue) next(ctx context.Context) (Event, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			ev := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.mu.Unlock()
			return ev, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, ErrDone
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, fmt.Errorf("alloc: waiting for the next event: %w", ctx.Err())
		}
	}
}

// stopAndWait is the shared StopAndWait: stop, then drain.
func stopAndWait(ctx context.Context, a Alloc) error {
	a.Stop()
	for {
		if _, err := a.Next(ctx); err != nil {
			if errors.Is(err, ErrDone) {
				return nil
			}
			return err
		}
	}
}
