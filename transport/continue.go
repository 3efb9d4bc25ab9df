package transport

import (
	"io"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Continuations (see ContinuingHandler): a connection's reader runs them
// itself while its input is busy, under a watchdog that hands reading to a
// new goroutine when one runs long, and dispatches them otherwise.

// A readTurn is one goroutine's stint as the connection's reader. It ends
// when the connection does, or when a continuation it runs outlasts the
// server's watchdog period: then a new goroutine takes over reading with a
// new turn, and the old one finishes the continuation and exits.
type readTurn struct {
	state atomic.Int32
	// pending are continuations left by frames already delivered, to run
	// once the buffered frames are; the turn's goroutine owns them until
	// a takeover, which then dispatches those not run yet.
	pending []Continuation
	ran     int // pending[:ran] have run
	held    int // messages delivered since pending was last run
}

// maxHeld bounds the messages delivered while continuations wait: a batch
// big enough to spare an actor's loop its per-message overheads, small
// enough that its mailbox stays small.
const maxHeld = 32

const (
	turnReading = iota
	turnContinuing
	turnTakenOver
)

// watchdogPeriod is how often the server looks for continuations that hold
// up their connection; one is taken over after one to two periods. It only
// needs to be long next to a typical handler: the takeover is what keeps a
// blocked continuation from stalling (or deadlocking) its connection. A
// timer per continuation would be more precise but costs a wake-up per
// message even when stopped in time: the runtime keeps a stopped timer in
// its heap until it cleans it, and its poller sleeps only until the stale
// deadline (measured: 12-30 more context switches per 64-proc gather).
// That is also why a lone message is handed to a worker, not run here.
const watchdogPeriod = time.Millisecond

// arrivalClock notes whether input arrives in quick succession: only then
// does the reader run continuations itself.
type arrivalClock struct {
	r    io.Reader
	last time.Time
	busy bool // the last read came within busyWindow of the one before
}

// busyWindow is how close together reads must come for a connection to
// count as busy; it matches the watchdog's period.
const busyWindow = watchdogPeriod

func (a *arrivalClock) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		now := time.Now()
		a.busy = now.Sub(a.last) < busyWindow
		a.last = now
	}
	return n, err
}

// runPending runs the turn's pending continuations in order. It reports
// whether this goroutine is still the reader.
func (c *serverConn) runPending(turn *readTurn) bool {
	for turn.ran < len(turn.pending) {
		k := turn.pending[turn.ran]
		turn.pending[turn.ran] = nil
		turn.ran++ // a takeover dispatches pending[ran:]
		if !c.runContinuation(turn, k) {
			return false
		}
	}
	turn.pending, turn.ran, turn.held = turn.pending[:0], 0, 0
	return true
}

// end dispatches the pending continuations and ends the connection.
func (c *serverConn) end(turn *readTurn) {
	for _, k := range turn.pending[turn.ran:] {
		c.srv.dispatch(k)
	}
	turn.pending = nil
	c.finish()
}

// runContinuation runs k on the reader's goroutine, watched by the
// server's watchdog, which hands reading to a new goroutine if k takes
// long. It reports whether this goroutine is still the reader.
func (c *serverConn) runContinuation(turn *readTurn, k Continuation) bool {
	c.continued.Add(1)
	turn.state.Store(turnContinuing)
	if c.stopping.Load() {
		// Close sets stopping before it takes over continuing readers, so
		// either it saw this turn continuing, or this sees it stopping:
		// then k must not hold the connection's end up.
		if !turn.state.CompareAndSwap(turnContinuing, turnReading) {
			return false
		}
		c.srv.dispatch(k)
		return true
	}
	c.srv.armWatchdog()
	c.srv.continueWith(k)
	return turn.state.CompareAndSwap(turnContinuing, turnReading)
}

// takeOver makes a new goroutine the reader if the current one is still
// inside a continuation. The old one owns no reader state once its turn
// is taken over (the CAS orders the hand-off).
func (c *serverConn) takeOver() {
	turn := c.turn.Load()
	if !turn.state.CompareAndSwap(turnContinuing, turnTakenOver) {
		return
	}
	// The old goroutine will not look at its pending continuations again.
	for _, k := range turn.pending[turn.ran:] {
		c.srv.dispatch(k)
	}
	turn.pending = nil
	next := new(readTurn)
	c.turn.Store(next)
	go c.read(next)
}

// armWatchdog starts the watchdog unless it runs already. It keeps running
// while a continuation does, so a busy server pays one timer per period,
// not one per message.
func (s *Server) armWatchdog() {
	if s.watchArmed.Load() || !s.watchArmed.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	if s.watchdog == nil {
		s.watchdog = time.AfterFunc(watchdogPeriod, s.watch)
	} else {
		s.watchdog.Reset(watchdogPeriod)
	}
	s.mu.Unlock()
}

// watch takes over the connections whose reader has been inside one
// continuation since the last look, and stops looking once none runs.
func (s *Server) watch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := false
	for c := range s.conns {
		n := c.continued.Load()
		if n == c.continuedSeen {
			if turn := c.turn.Load(); turn != nil && turn.state.Load() == turnContinuing {
				c.takeOver()
				busy = true
			}
			continue
		}
		c.continuedSeen = n
		// Continuations ran since the last look. Look again only if one
		// still runs: a period with nothing to watch would be a wake-up
		// of this process for nothing, and the next continuation arms
		// the watchdog again anyway.
		if turn := c.turn.Load(); turn != nil && turn.state.Load() == turnContinuing {
			busy = true
		}
	}
	if s.closed {
		return
	}
	if busy {
		s.watchdog.Reset(watchdogPeriod)
		return
	}
	s.watchArmed.Store(false)
	// A continuation that started while we looked saw the watchdog armed;
	// look again so that it is not left unwatched.
	for c := range s.conns {
		if c.continued.Load() != c.continuedSeen {
			if s.watchArmed.CompareAndSwap(false, true) {
				s.watchdog.Reset(watchdogPeriod)
			}
			return
		}
	}
}

// dispatch runs k elsewhere than on the reader.
func (s *Server) dispatch(k Continuation) {
	if d, ok := k.(Dispatcher); ok {
		d.Dispatch()
		return
	}
	go s.continueWith(k)
}

func (s *Server) continueWith(k Continuation) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.log.Error("transport: continuation panicked", "addr", s.addr.String(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	k.Continue()
}
