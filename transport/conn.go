package transport

import (
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var errInterrupted = errors.New("transport: connection interrupted")

// deadlineConn gives every Read and Write a deadline of timeout from now, so
// a peer that goes silent (or stops reading) is noticed. Deadlines are moved
// only when an eighth of the timeout has passed, keeping timer churn off the
// hot path. interrupt stops a blocked Read for good, even if it races with a
// deadline refresh.
type deadlineConn struct {
	net.Conn
	timeout     time.Duration
	rdl, wdl    time.Time // last deadlines set; owned by the reader/writer
	interrupted atomic.Bool
}

func newDeadlineConn(c net.Conn, timeout time.Duration) *deadlineConn {
	return &deadlineConn{Conn: c, timeout: timeout}
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if now := time.Now(); d.rdl.Sub(now) < d.timeout-d.timeout/8 {
		d.rdl = now.Add(d.timeout)
		d.Conn.SetReadDeadline(d.rdl)
	}
	// Checked after the refresh: interrupt sets the flag before its own
	// deadline, so one of the two always wins.
	if d.interrupted.Load() {
		return 0, errInterrupted
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if now := time.Now(); d.wdl.Sub(now) < d.timeout-d.timeout/8 {
		d.wdl = now.Add(d.timeout)
		d.Conn.SetWriteDeadline(d.wdl)
	}
	return d.Conn.Write(p)
}

// interruptRead makes the current and all later Reads fail; writes go on
// (the server still flushes a final ack).
func (d *deadlineConn) interruptRead() {
	d.interrupted.Store(true)
	d.Conn.SetReadDeadline(time.Unix(1, 0))
}

// tuneConn sets TCP options; unix sockets need none.
func tuneConn(c net.Conn, keepalive time.Duration) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepalive, Interval: keepalive, Count: 3})
	}
}

// isClosedConnErr reports errors that merely mean "the connection ended".
func isClosedConnErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, errInterrupted) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func newID() [sessionIDSize]byte {
	var id [sessionIDSize]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return id
}

// notifier hands undeliverable messages to Options.OnUndeliverable from its
// own goroutine, in order, so that callers of Post never run the callback
// and no lock is held while it runs. The goroutine exists only while there is
// something to report.
type notifier struct {
	fn      func([]byte, error)
	log     *slog.Logger
	mu      sync.Mutex
	items   []undelivered
	running bool
	wg      sync.WaitGroup
}

type undelivered struct {
	msg []byte
	err error
}

func (n *notifier) push(items ...undelivered) {
	if len(items) == 0 {
		return
	}
	if n.fn == nil {
		n.log.Debug("transport: dropping undeliverable messages (no OnUndeliverable)", "count", len(items), "reason", items[0].err)
		return
	}
	n.mu.Lock()
	n.items = append(n.items, items...)
	if !n.running {
		n.running = true
		n.wg.Add(1)
		go n.loop()
	}
	n.mu.Unlock()
}

func (n *notifier) loop() {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		batch := n.items
		n.items = nil
		if len(batch) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		for _, it := range batch {
			n.call(it)
		}
	}
}

func (n *notifier) call(it undelivered) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("transport: OnUndeliverable panicked", "panic", r)
		}
	}()
	n.fn(it.msg, it.err)
}

func (n *notifier) wait() { n.wg.Wait() }
