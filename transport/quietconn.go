package transport

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A unix stream socket tells every epoll watching it for EPOLLOUT that it
// has room again each time the peer reads from it, not only after a write
// found it full. The runtime's poller watches every socket for EPOLLOUT,
// so a proc that sends a reply and goes idle is woken once more, for
// nothing, when the reply is read: a second thread wake-up per message
// for a proc answering one request at a time, which with many procs on a
// few cores is CPU the whole mesh waits for.
//
// quietConn keeps a sender's unix socket out of the runtime's poller. The
// socket sits in two epoll instances of its own, which the runtime's
// poller watches instead: rd holds it for input (edge-triggered), wr holds
// it for output only while a write is waiting for room. Room appearing
// when nobody waits for it then reaches no poller at all.

type quietConn struct {
	fd     int      // the socket, non-blocking
	rd, wr *os.File // epoll instances, pollable by the runtime
	rdRaw  syscall.RawConn
	wrRaw  syscall.RawConn
	// wmu orders writers: arming and disarming wr must not interleave.
	wmu    sync.Mutex
	local  net.Addr
	remote net.Addr

	// ops is held shared by every use of fd and exclusively by Close to
	// close it, so a descriptor number is never used after it may have
	// been reused.
	ops    sync.RWMutex
	closed atomic.Bool
	// wrote orders, for the race detector, each write before every later
	// read: what a read returns (an ack) can only follow the bytes a
	// write handed to the kernel, and a sender reuses a message's memory
	// on its ack. A net.Conn gives the same order through the one mutex
	// its reads and writes share.
	reading   rawRead // the reader's
	wrote     atomic.Uint64
	bigBuffer atomic.Bool // the send buffer was grown (growSendBuffer)
	once      sync.Once
}

// quiet moves c, a connected unix socket, onto a quietConn; c is closed
// either way, and on failure the error says why.
func quiet(c net.Conn) (net.Conn, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("transport: %T has no file descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, os.NewSyscallError("fcntl", dupErr)
	}
	q := &quietConn{fd: fd, local: c.LocalAddr(), remote: c.RemoteAddr()}
	if q.rd, q.rdRaw, err = newEpoll(fd, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLET); err == nil {
		// Registered with no events: disabled until a write waits.
		q.wr, q.wrRaw, err = newEpoll(fd, 0)
	}
	if err != nil {
		if q.rd != nil {
			q.rd.Close()
		}
		unix.Close(fd)
		return nil, err
	}
	return q, nil
}

// A unix socket's send buffer bounds the bytes in flight to the receiver.
// The default (about 200 KiB) splits a 1 MiB message into five writes and
// five reads, each a wake-up on both sides: a connection that carries a
// message of largeWrite bytes or more asks for bigSendBuffer from then on,
// which measured a fifth more throughput for 1 MiB messages here. Not
// from the start: for small messages the larger buffer lets the data
// leave the caches before it is read, and cost a sixth of a 64-byte
// stream's rate.
const (
	largeWrite    = 256 << 10
	bigSendBuffer = 1 << 20
)

// newEpoll returns a non-blocking epoll instance watching fd for events,
// as a file the runtime's poller waits on.
func newEpoll(fd int, events uint32) (*os.File, syscall.RawConn, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		unix.Close(ep)
		return nil, nil, os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(ep), "epoll")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, raw, nil
}

func (q *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, errno, err := q.reading.read(quietRaw{q}, p)
	if errno != 0 {
		err = q.opError("read", errno)
	}
	if err != nil && err != io.EOF {
		if _, ok := err.(*net.OpError); !ok {
			err = q.opError("read", err)
		}
	}
	return n, err
}

func (q *quietConn) Write(p []byte) (int, error) {
	if len(p) >= largeWrite && !q.bigBuffer.Load() {
		q.growSendBuffer()
	}
	n := 0
	var errno syscall.Errno
	err := q.writeWait(func(fd uintptr) bool {
		for n < len(p) {
			// Long writes enter the system call state, so that a garbage
			// collection need not wait for the copy (see rawRead).
			trap := syscall.RawSyscall
			if len(p)-n >= longSyscall {
				trap = syscall.Syscall
			}
			r, _, e := trap(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return n, q.opError("write", err)
	}
	return n, nil
}

// growSendBuffer asks for bigSendBuffer, once; the kernel caps it at
// net.core.wmem_max, and a failure leaves the default.
func (q *quietConn) growSendBuffer() {
	q.ops.RLock()
	defer q.ops.RUnlock()
	if !q.closed.Load() && !q.bigBuffer.Swap(true) {
		unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, bigSendBuffer)
	}
}

// readWait runs f on the socket until it returns true, waiting for input
// whenever it returns false.
func (q *quietConn) readWait(f func(uintptr) bool) error {
	q.ops.RLock()
	defer q.ops.RUnlock()
	if q.closed.Load() {
		return net.ErrClosed
	}
	fd := uintptr(q.fd)
	err := q.rdRaw.Read(func(uintptr) bool { return f(fd) })
	q.wrote.Load()
	return q.closedErr(err)
}

// writeWait runs f on the socket until it returns true, waiting for room
// whenever it returns false. Output is watched only while it waits.
func (q *quietConn) writeWait(f func(uintptr) bool) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.ops.RLock()
	defer q.ops.RUnlock()
	if q.closed.Load() {
		return net.ErrClosed
	}
	defer q.wrote.Add(1)
	fd := uintptr(q.fd)
	if f(fd) {
		return nil
	}
	// Arming inside wr's Read keeps wr's descriptor open while it is
	// used: Close may be closing wr meanwhile.
	armed := false
	var ctlErr error
	err := q.wrRaw.Read(func(ep uintptr) bool {
		if armed {
			return f(fd)
		}
		if ctlErr = watchOutput(ep, q.fd, true); ctlErr != nil {
			return true
		}
		armed = true
		// Watching is level-triggered, so room that appeared between
		// the failed attempt and the arming still wakes the wait.
		return f(fd)
	})
	if armed {
		q.wrRaw.Control(func(ep uintptr) { watchOutput(ep, q.fd, false) })
	}
	if err == nil {
		err = ctlErr
	}
	return q.closedErr(err)
}

// watchOutput makes the epoll instance ep watch fd for room, or for
// nothing.
func watchOutput(ep uintptr, fd int, on bool) error {
	var events uint32
	if on {
		events = unix.EPOLLOUT
	}
	if err := unix.EpollCtl(int(ep), unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// closedErr reports any failure of a closed connection as net.ErrClosed,
// as a net.Conn does.
func (q *quietConn) closedErr(err error) error {
	if err != nil && q.closed.Load() {
		return net.ErrClosed
	}
	return err
}

// opError wraps err as a net.UnixConn would.
func (q *quietConn) opError(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "unix", Source: q.local, Addr: q.remote, Err: err}
}

// Close wakes any waiting Read or Write, waits for them to leave, and
// closes the socket.
func (q *quietConn) Close() error {
	first := false
	q.once.Do(func() {
		first = true
		q.closed.Store(true)
		q.rd.Close()
		q.wr.Close()
		q.ops.Lock()
		unix.Close(q.fd)
		q.ops.Unlock()
	})
	if !first {
		return net.ErrClosed
	}
	return nil
}

// CloseWrite shuts the sending half down, as net.UnixConn's does.
func (q *quietConn) CloseWrite() error {
	q.ops.RLock()
	defer q.ops.RUnlock()
	if q.closed.Load() {
		return net.ErrClosed
	}
	return os.NewSyscallError("shutdown", unix.Shutdown(q.fd, unix.SHUT_WR))
}

func (q *quietConn) LocalAddr() net.Addr  { return q.local }
func (q *quietConn) RemoteAddr() net.Addr { return q.remote }

func (q *quietConn) SetDeadline(t time.Time) error {
	if err := q.SetReadDeadline(t); err != nil {
		return err
	}
	return q.SetWriteDeadline(t)
}

func (q *quietConn) SetReadDeadline(t time.Time) error {
	return q.closedErr(q.rd.SetReadDeadline(t))
}

// SetWriteDeadline bounds waits for room, which are reads of wr.
func (q *quietConn) SetWriteDeadline(t time.Time) error {
	return q.closedErr(q.wr.SetReadDeadline(t))
}

// SyscallConn gives raw access with the same waiting rules as Read and
// Write.
func (q *quietConn) SyscallConn() (syscall.RawConn, error) { return quietRaw{q}, nil }

type quietRaw struct{ q *quietConn }

func (r quietRaw) Control(f func(uintptr)) error {
	r.q.ops.RLock()
	defer r.q.ops.RUnlock()
	if r.q.closed.Load() {
		return net.ErrClosed
	}
	f(uintptr(r.q.fd))
	return nil
}

func (r quietRaw) Read(f func(uintptr) bool) error  { return r.q.readWait(f) }
func (r quietRaw) Write(f func(uintptr) bool) error { return r.q.writeWait(f) }
