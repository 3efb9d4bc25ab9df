package transport

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/actormesh/actormesh/internal/testwait"
)

// testWait bounds every wait in the tests; it is generous because it only
// matters when something is broken.
var testWait = 20 * time.Second

type addrCase struct {
	name string
	addr func(t *testing.T) Addr
}

var ipv6Once struct {
	sync.Once
	ok bool
}

func haveIPv6() bool {
	ipv6Once.Do(func() {
		ln, err := net.Listen("tcp", "[::1]:0")
		if err == nil {
			ln.Close()
			ipv6Once.ok = true
		}
	})
	return ipv6Once.ok
}

func tempSocket(t *testing.T) string {
	dir, err := os.MkdirTemp("", "amsh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// netCases are the socket transports; withLocal adds the in-process one.
func netCases() []addrCase {
	return []addrCase{
		{"unix-abstract", func(t *testing.T) Addr { return Unix.Any() }},
		{"unix-path", func(t *testing.T) Addr { return Addr{Unix, tempSocket(t)} }},
		{"tcp4", func(t *testing.T) Addr { return TCP.AnyOn("127.0.0.1") }},
		{"tcp6", func(t *testing.T) Addr {
			if !haveIPv6() {
				t.Skip("no IPv6 loopback")
			}
			return TCP.Any()
		}},
	}
}

func allCases() []addrCase {
	return append(netCases(), addrCase{"local", func(t *testing.T) Addr { return Local.Any() }})
}

// collector is a Handler that records messages in order.
type collector struct {
	mu      sync.Mutex
	msgs    [][]byte
	want    int
	reached chan struct{}
}

func newCollector(want int) *collector {
	return &collector{want: want, reached: make(chan struct{})}
}

func (c *collector) handle(msg []byte) {
	c.mu.Lock()
	c.msgs = append(c.msgs, msg)
	if len(c.msgs) == c.want {
		close(c.reached)
	}
	c.mu.Unlock()
}

func (c *collector) wait(t *testing.T) [][]byte {
	t.Helper()
	select {
	case <-c.reached:
	case <-time.After(testWait):
		c.mu.Lock()
		n := len(c.msgs)
		c.mu.Unlock()
		t.Fatalf("got %d of %d messages", n, c.want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.msgs...)
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// undeliverables collects OnUndeliverable calls.
type undeliverables chan undelivered

func (u undeliverables) fn(msg []byte, err error) { u <- undelivered{msg, err} }

func (u undeliverables) next(t *testing.T) undelivered {
	t.Helper()
	return testwait.Recv(t, u, testWait, "an undeliverable message")
}

func seqMsg(i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func msgSeq(b []byte) int { return int(binary.BigEndian.Uint64(b)) }

func checkInOrder(t *testing.T, msgs [][]byte, n int) {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("got %d messages, want %d", len(msgs), n)
	}
	for i, m := range msgs {
		if len(m) != 8 || msgSeq(m) != i {
			t.Fatalf("message %d is %x, want seq %d", i, m, i)
		}
	}
}

func mustServe(t *testing.T, a Addr, h Handler, o *Options) *Server {
	t.Helper()
	s, err := Serve(a, h, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustDial(t *testing.T, a Addr, o *Options) *Sender {
	t.Helper()
	s, err := Dial(a, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxWait(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}
