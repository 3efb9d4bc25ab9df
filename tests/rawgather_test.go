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
)

// A raw gather is the cast-and-gather of BenchmarkCastGather64 done with
// plain unix sockets and no runtime: n processes (this test binary,
// re-executed) in the same k-ary tree, each passing a fixed-size request
// on to its children and answering the client directly. It measures what
// the machine itself charges for waking n processes and moving 2n
// messages, so that the gather's figure can be read against it.

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
	client, err := net.Dial("unix", rawClientAddr(name))
	if err != nil {
		return err
	}
	defer client.Close()
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
	var children []net.Conn
	for c := fanout*i + 1; c <= fanout*i+fanout && c < n; c++ {
		conn, err := net.Dial("unix", rawNodeAddr(name, c))
		if err != nil {
			return err
		}
		defer conn.Close()
		children = append(children, conn)
	}
	if _, err := client.Write(reply); err != nil {
		return err
	}
	parent, err := ln.Accept()
	if err != nil {
		return err
	}
	defer parent.Close()
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
		if _, err := client.Write(reply); err != nil {
			return err
		}
	}
}

func rawNodeAddr(name string, i int) string { return "@" + name + "-" + strconv.Itoa(i) }
func rawClientAddr(name string) string      { return "@" + name + "-client" }

// rawGather is the client's side of a running raw tree.
type rawGather struct {
	cmds    []*exec.Cmd
	root    net.Conn
	conns   []net.Conn
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
		c, err := ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("raw gather: waiting for the nodes: %w", err)
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
	if g.root, err = net.Dial("unix", rawNodeAddr(name, 0)); err != nil {
		return nil, err
	}
	for _, c := range g.conns {
		go g.readReplies(c)
	}
	return g, nil
}

func (g *rawGather) readReplies(c net.Conn) {
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
	if _, err := g.root.Write(g.req); err != nil {
		return err
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
	if g.root != nil {
		g.root.Close()
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
