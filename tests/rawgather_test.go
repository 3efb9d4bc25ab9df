package tests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A raw gather is the cast-and-gather of BenchmarkCastGather64 done with
// plain unix sockets and no runtime: n processes (this test binary,
// re-executed) in the same k-ary tree, each passing a fixed-size request
// on to its children and answering the client directly. It measures the
// least a Go program pays here for waking n processes and moving 2n
// messages, so that the gather's figure can be read against it.
//
// Least, because its I/O is the cheapest Go allows (rawReader,
// rawWriter). With net.Conn's Read and Write, each system call goes
// through the scheduler's entersyscall, which wakes the runtime's monitor
// thread of a process that was idle; and a socket in the runtime's poller
// is reported writable each time its peer reads. Both cost context
// switches that, on a small machine, make a gather through plain
// net.Conns take twice as long as this one.

const (
	envRawNode   = "ACTORMESH_TEST_RAWGATHER_NODE" // index:n:fanout:name
	rawRequest   = 64
	rawReplySize = 8
)

// rawGatherNode is the child's side; it returns when its parent goes away.
func rawGatherNode(spec string) error {
	var i, n, fanout int
	var name string
	if _, err := fmt.Sscanf(spec, "%d:%d:%d:%s", &i, &n, &fanout, &name); err != nil {
		return fmt.Errorf("bad %s %q: %w", envRawNode, spec, err)
	}
	ln, err := net.Listen("unix", rawNodeAddr(name, i))
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := net.Dial("unix", rawClientAddr(name))
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := newRawReader(conn)
	if err != nil {
		return err
	}
	// Hello once listening; then, told that every node listens, connect
	// to the children and say hello again: the tree is whole when the
	// client has the second hello of every node.
	reply := make([]byte, rawReplySize)
	binary.BigEndian.PutUint32(reply, uint32(i))
	if _, err := client.Write(reply); err != nil {
		return err
	}
	if _, err := io.ReadFull(client, reply[4:5]); err != nil {
		return err
	}
	var children []rawWriter
	first := rawRoots(n, fanout) + fanout*i // as a cast's tree (castChildren in mesh/cast.go)
	for c := first; c < first+fanout && c < n; c++ {
		conn, err := net.Dial("unix", rawNodeAddr(name, c))
		if err != nil {
			return err
		}
		w, err := newRawWriter(conn)
		if err != nil {
			return err
		}
		defer w.Close()
		children = append(children, w)
	}
	if _, err := client.Write(reply); err != nil {
		return err
	}
	up, err := newRawWriter(conn) // the client's socket, from now on only written to
	if err != nil {
		return err
	}
	defer up.Close()
	accepted, err := ln.Accept()
	if err != nil {
		return err
	}
	defer accepted.Close()
	parent, err := newRawReader(accepted)
	if err != nil {
		return err
	}
	req := make([]byte, rawRequest)
	for {
		if _, err := io.ReadFull(parent, req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for _, c := range children {
			if _, err := c.Write(req); err != nil {
				return err
			}
		}
		copy(reply[4:], req[:4]) // the gather's sequence number
		if _, err := up.Write(reply); err != nil {
			return err
		}
	}
}

// rawReader reads a connection with raw system calls, waiting for input in
// the runtime's poller.
type rawReader struct {
	net.Conn
	raw syscall.RawConn
}

func newRawReader(c net.Conn) (*rawReader, error) {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	return &rawReader{Conn: c, raw: raw}, nil
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := r.raw.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(m), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawWriter writes with raw system calls to a duplicate of a connection's
// socket that is not in the runtime's poller (the connection itself is
// closed), so that nothing wakes the process when its peer reads. When the
// socket is full, which a gather's few small messages never make it, it
// waits in poll(2).
type rawWriter struct{ fd int }

func newRawWriter(c net.Conn) (rawWriter, error) {
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return rawWriter{}, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return rawWriter{}, err
	}
	if dupErr != nil {
		return rawWriter{}, dupErr
	}
	c.Close() // leaves the poller; the duplicate keeps the socket open
	return rawWriter{fd: fd}, nil
}

func (w rawWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(w.fd), uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
		switch e {
		case 0:
			written += int(m)
		case syscall.EINTR:
		case syscall.EAGAIN:
			fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(fds, 10_000); err != nil && err != unix.EINTR {
				return written, err
			}
		default:
			return written, e
		}
	}
	return written, nil
}

func (w rawWriter) Close() error { return syscall.Close(w.fd) }

// rawRoots is how many nodes the client sends a request to, as a caster
// does (castRoots in mesh/cast.go): n/(k+1) rounded up, between 1 and k.
func rawRoots(n, fanout int) int { return max(1, min(fanout, (n+fanout)/(fanout+1))) }

func rawNodeAddr(name string, i int) string { return "@" + name + "-" + strconv.Itoa(i) }
func rawClientAddr(name string) string      { return "@" + name + "-client" }

// rawGather is the client's side of a running raw tree.
type rawGather struct {
	cmds    []*exec.Cmd
	roots   []rawWriter // the client's children: nodes 0 … rawRoots-1
	conns   []*rawReader
	replies chan uint32
	errs    chan error
	seq     uint32
	req     []byte
}

func startRawGather(n, fanout int) (g *rawGather, err error) {
	name := fmt.Sprintf("amrawgather-%d-%d", os.Getpid(), time.Now().UnixNano())
	ln, err := net.Listen("unix", rawClientAddr(name))
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	g = &rawGather{replies: make(chan uint32, n), errs: make(chan error, n), req: make([]byte, rawRequest)}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	for i := range n {
		cmd := exec.Command(os.Args[0])
		// A node's share of the CPUs is a proc's in the mesh it is
		// compared with (8 per host; see procGOMAXPROCS in mesh).
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d:%d:%s", envRawNode, i, n, fanout, name),
			"GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/8)))
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		g.cmds = append(g.cmds, cmd)
	}
	deadline := time.Now().Add(60 * time.Second)
	ln.(*net.UnixListener).SetDeadline(deadline)
	hello := make([]byte, rawReplySize)
	for range n {
		conn, err := ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("raw gather: waiting for the nodes: %w", err)
		}
		c, err := newRawReader(conn)
		if err != nil {
			conn.Close()
			return nil, err
		}
		g.conns = append(g.conns, c)
		c.SetDeadline(deadline)
		if _, err := io.ReadFull(c, hello); err != nil {
			return nil, err
		}
	}
	for _, c := range g.conns { // every node listens: connect the tree
		if _, err := c.Write([]byte{1}); err != nil {
			return nil, err
		}
	}
	for _, c := range g.conns {
		if _, err := io.ReadFull(c, hello); err != nil {
			return nil, fmt.Errorf("raw gather: waiting for the tree: %w", err)
		}
		c.SetDeadline(time.Time{})
	}
	for i := range rawRoots(n, fanout) {
		root, err := net.Dial("unix", rawNodeAddr(name, i))
		if err != nil {
			return nil, err
		}
		w, err := newRawWriter(root)
		if err != nil {
			root.Close()
			return nil, err
		}
		g.roots = append(g.roots, w)
	}
	for _, c := range g.conns {
		go g.readReplies(c)
	}
	return g, nil
}

func (g *rawGather) readReplies(c *rawReader) {
	reply := make([]byte, rawReplySize)
	for {
		if _, err := io.ReadFull(c, reply); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				g.errs <- err
			}
			return
		}
		g.replies <- binary.BigEndian.Uint32(reply[4:])
	}
}

// gather sends one request down the tree and waits for every node's reply.
func (g *rawGather) gather() error {
	g.seq++
	binary.BigEndian.PutUint32(g.req, g.seq)
	for _, root := range g.roots {
		if _, err := root.Write(g.req); err != nil {
			return err
		}
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for range g.conns {
		select {
		case seq := <-g.replies:
			if seq != g.seq {
				return fmt.Errorf("raw gather: reply to request %d during request %d", seq, g.seq)
			}
		case err := <-g.errs:
			return err
		case <-timeout.C:
			return errors.New("raw gather: replies missing after 10s")
		}
	}
	return nil
}

// close ends the nodes (each exits when its parent's connection closes)
// and reaps them.
func (g *rawGather) close() {
	for _, root := range g.roots {
		root.Close()
	}
	for _, c := range g.conns {
		c.Close()
	}
	for _, cmd := range g.cmds {
		done := make(chan struct{})
		go func() {
			cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// The raw baseline itself works: every node of the tree answers each
// request once, and closing leaves no node behind (TestMain checks).
func TestRawGatherBaseline(t *testing.T) {
	g, err := startRawGather(10, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	for range 3 {
		if err := g.gather(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case seq := <-g.replies:
		t.Fatalf("an extra reply, to request %d", seq)
	default:
	}
}
