package transport

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

var errInterrupted = errors.New("transport: connection interrupted")

// deadlineConn gives every Read and Write a deadline of timeout from now, so
// a peer that goes silent (or stops reading) is noticed. Deadlines are moved
// only when an eighth of the timeout has passed, keeping timer churn off the
// hot path. interrupt stops a blocked Read for good, even if it races with a
// deadline refresh.
type deadlineConn struct {
	net.Conn
	raw         syscall.RawConn // nil if the conn has no file descriptor
	timeout     time.Duration
	rdl, wdl    time.Time    // last deadlines set; owned by the reader/writer
	holdRead    bool         // Read leaves the read deadline as set (handshake)
	writeCap    atomic.Int64 // once set (Unix ns): the write deadline for good
	interrupted atomic.Bool
	rd          rawRead // the reader's
}

func newDeadlineConn(c net.Conn, timeout time.Duration) *deadlineConn {
	d := &deadlineConn{Conn: c, timeout: timeout}
	if sc, ok := c.(syscall.Conn); ok {
		d.raw, _ = sc.SyscallConn()
	}
	return d
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if now := time.Now(); !d.holdRead && d.rdl.Sub(now) < d.timeout-d.timeout/8 {
		d.rdl = now.Add(d.timeout)
		d.Conn.SetReadDeadline(d.rdl)
	}
	// Checked after the refresh: interrupt sets the flag before its own
	// deadline, so one of the two always wins.
	if d.interrupted.Load() {
		return 0, errInterrupted
	}
	if d.raw == nil || len(p) == 0 {
		return d.Conn.Read(p)
	}
	return d.rawRead(p)
}

// longSyscall is the size from which a read is long (see rawRead); it is
// above the server's read buffer, whose fills stay raw.
const longSyscall = 256 << 10

// rawRead reads with a raw system call on the non-blocking socket and
// waits in the runtime's poller only when nothing is there. A plain Read
// enters the runtime's system call state, which in a process that was
// idle wakes the runtime's monitor thread first: a thread wake-up per
// message for a proc that answers one request at a time.
//
// A long read, straight into a large frame, does enter the system call
// state: a goroutine inside a raw system call cannot be stopped, so every
// garbage collection (two stop-the-worlds and a stack scan) would wait for
// a megabyte's copy.
func (d *deadlineConn) rawRead(p []byte) (int, error) {
	n, errno, err := d.rd.read(d.raw, p)
	if errno != 0 {
		err = &net.OpError{Op: "read", Net: d.LocalAddr().Network(), Source: d.LocalAddr(), Addr: d.RemoteAddr(), Err: errno}
	}
	return n, err
}

// rawRead is a reader's reusable read through a RawConn. It is used by
// one goroutine at a time; a closure per read would cost three
// allocations a message.
type rawRead struct {
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // o.step, bound once
}

// read is one read of p (not empty) through raw, waiting until there is
// input. A failed read returns its errno, for the caller to wrap; 0 bytes
// read is io.EOF.
func (o *rawRead) read(raw syscall.RawConn, p []byte) (n int, errno syscall.Errno, err error) {
	if o.fn == nil {
		o.fn = o.step
	}
	o.p, o.n, o.errno = p, 0, 0
	err = raw.Read(o.fn)
	n, errno = o.n, o.errno
	o.p = nil
	switch {
	case err != nil:
		return 0, 0, err
	case errno != 0:
		return 0, errno, nil
	case n == 0:
		return 0, 0, io.EOF
	}
	return n, 0, nil
}

func (o *rawRead) step(fd uintptr) bool {
	p := o.p
	for {
		var r uintptr
		var e syscall.Errno
		if len(p) < longSyscall {
			r, _, e = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		} else {
			r, _, e = syscall.Syscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		}
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		}
		o.n, o.errno = int(r), e
		return true
	}
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if now := time.Now(); d.writeCap.Load() == 0 && d.wdl.Sub(now) < d.timeout-d.timeout/8 {
		d.wdl = now.Add(d.timeout)
		d.Conn.SetWriteDeadline(d.wdl)
		if c := d.writeCap.Load(); c != 0 {
			d.Conn.SetWriteDeadline(time.Unix(0, c)) // capped meanwhile
		}
	}
	return d.Conn.Write(p)
}

// capWrites makes t the deadline of every write from now on (the first
// cap stays): a peer that stops reading cannot hold up a closing
// connection's writers for the keepalive timeout, which may be hours.
func (d *deadlineConn) capWrites(t time.Time) {
	d.writeCap.CompareAndSwap(0, t.UnixNano())
	d.Conn.SetWriteDeadline(time.Unix(0, d.writeCap.Load()))
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
