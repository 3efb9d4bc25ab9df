package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/actormesh/actormesh/internal/testwait"
)

// rawClient performs a handshake by hand and returns the connection.
func rawClient(t *testing.T, a Addr, keepaliveMillis int64) (net.Conn, *bufio.Reader) {
	t.Helper()
	network := "tcp"
	if a.Transport == Unix {
		network = "unix"
	}
	c, err := net.Dial(network, a.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	id := newID()
	w := bufio.NewWriter(c)
	if err := writePreamble(w, &hello{Version: protoVersion, Session: id[:], KeepaliveMillis: keepaliveMillis}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	_, body, err := readPreamble(br)
	if err != nil {
		t.Fatal(err)
	}
	var r helloReply
	if err := msgpack.Unmarshal(body, &r); err != nil || !r.OK {
		t.Fatalf("handshake reply %+v, %v", r, err)
	}
	return c, br
}

// waitClosed reads until the peer closes the connection.
func waitClosed(t *testing.T, c net.Conn, r io.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testWait))
	_, err := io.Copy(io.Discard, r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}

func TestMalformedFrames(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], n)
		return b
	}
	inputs := map[string][]byte{
		"garbage":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized":     hdr(frameData, 1<<30),
		"unknown type":  hdr(77, 0),
		"ack to server": append(hdr(frameAck, 8), 0, 0, 0, 0, 0, 0, 0, 0),
		"truncated":     append(hdr(frameData, 100), 1, 2, 3),
	}
	for _, tc := range netCases() {
		t.Run(tc.name, func(t *testing.T) {
			col := newCollector(1)
			srv := mustServe(t, tc.addr(t), col.handle, &Options{MaxFrameSize: 1 << 20})
			for name, in := range inputs {
				c, br := rawClient(t, srv.Addr(), 0)
				c.Write(in)
				if name == "truncated" {
					c.(interface{ CloseWrite() error }).CloseWrite()
				}
				waitClosed(t, c, br)
			}
			// A bad handshake, too.
			network := map[Transport]string{Unix: "unix", TCP: "tcp"}[srv.Addr().Transport]
			c, err := net.Dial(network, srv.Addr().Address)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("NOPE and some more bytes"))
			waitClosed(t, c, c)

			s := mustDial(t, srv.Addr(), nil)
			if err := s.Send(ctxWait(t), []byte("still serving")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestVersionMismatchClient(t *testing.T) {
	srv := mustServe(t, Unix.Any(), func([]byte) {}, nil)
	c, err := net.Dial("unix", srv.Addr().Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A hello from a future version with a body this version cannot read.
	var p [preambleSize]byte
	copy(p[:], protoMagic)
	binary.BigEndian.PutUint16(p[4:], 7)
	binary.BigEndian.PutUint32(p[6:], 3)
	c.Write(append(p[:], 1, 2, 3))
	v, body, err := readPreamble(c)
	if err != nil {
		t.Fatal(err)
	}
	var r helloReply
	if err := msgpack.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if v != protoVersion || r.OK || !strings.Contains(r.Error, "version 7") || !strings.Contains(r.Error, "version 1") {
		t.Fatalf("reply v%d %+v", v, r)
	}
	waitClosed(t, c, c)
}

func TestVersionMismatchServer(t *testing.T) {
	ln, err := net.Listen("unix", "@"+randomName(24))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		readPreamble(c)
		body, _ := msgpack.Marshal(&helloReply{Version: 9, Error: "I only speak version 9"})
		var p [preambleSize]byte
		copy(p[:], protoMagic)
		binary.BigEndian.PutUint16(p[4:], 9)
		binary.BigEndian.PutUint32(p[6:], uint32(len(body)))
		c.Write(append(p[:], body...))
		io.Copy(io.Discard, c)
	}()
	s := mustDial(t, Addr{Unix, ln.Addr().String()}, nil)
	err = s.Send(ctxWait(t), []byte("hi"))
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "version 9") || !strings.Contains(err.Error(), "version 1") {
		t.Fatalf("Send = %v, want ErrVersion naming both versions", err)
	}
	s.Close()
	ln.Close()
	testwait.Recv(t, done, testWait, "the fake server's end")
}

func TestDeliveryTimeout(t *testing.T) {
	for _, a := range []Addr{{Unix, tempSocket(t)}, {Unix, "@" + randomName(24)}, {TCP, "127.0.0.1:1"}} {
		t.Run(a.String(), func(t *testing.T) {
			und := make(undeliverables, 10)
			s := mustDial(t, a, &Options{DeliveryTimeout: 200 * time.Millisecond, OnUndeliverable: und.fn, maxBackoff: 50 * time.Millisecond})
			s.Post([]byte("a"))
			s.Post([]byte("b"))
			for _, want := range []string{"a", "b"} {
				u := und.next(t)
				if !errors.Is(u.err, ErrDeliveryTimeout) || string(u.msg) != want {
					t.Fatalf("undeliverable %q: %v", u.msg, u.err)
				}
			}
			if err := s.Send(ctxWait(t), []byte("c")); !errors.Is(err, ErrDeliveryTimeout) {
				t.Fatalf("Send = %v", err)
			}
		})
	}
}

func TestHandlerPanic(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			col := newCollector(1)
			srv := mustServe(t, tc.addr(t), func(m []byte) {
				if string(m) == "boom" {
					panic("boom")
				}
				col.handle(m)
			}, nil)
			s := mustDial(t, srv.Addr(), nil)
			if err := s.Send(ctxWait(t), []byte("boom")); err != nil {
				t.Fatal(err)
			}
			if err := s.Send(ctxWait(t), []byte("after")); err != nil {
				t.Fatal(err)
			}
			if string(col.wait(t)[0]) != "after" {
				t.Fatal("wrong message")
			}
		})
	}
}

func TestReceiverReplaced(t *testing.T) {
	for _, tc := range []addrCase{netCases()[0], netCases()[1], {"local", func(*testing.T) Addr { return Addr{Local, "987654"} }}} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.addr(t)
			release := make(chan struct{})
			got1 := make(chan struct{})
			var first atomic.Bool
			srv1, err := Serve(a, func(m []byte) {
				if first.CompareAndSwap(false, true) {
					close(got1)
					<-release // hold the rest unacknowledged
				}
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			a = srv1.Addr()
			und := make(undeliverables, 100)
			s := mustDial(t, a, &Options{OnUndeliverable: und.fn, maxBackoff: 20 * time.Millisecond})
			for i := range 5 {
				s.Post(seqMsg(i))
			}
			testwait.Recv(t, got1, testWait, "the first message")
			closed := make(chan struct{})
			go func() { srv1.Close(); close(closed) }()
			// Once Close has begun, let the handler finish: messages 1..4
			// stay unacknowledged.
			waitFor(t, func() bool { return srv1.isClosing() })
			close(release)
			testwait.Recv(t, closed, testWait, "the first server's Close")
			col := newCollector(1)
			mustServe(t, a, col.handle, nil)

			var failed []int
			for len(failed) < 4 {
				u := und.next(t)
				if a.Transport == Local {
					if !errors.Is(u.err, ErrClosed) {
						t.Fatalf("undeliverable: %v", u.err)
					}
				} else if !errors.Is(u.err, ErrReceiverReplaced) {
					t.Fatalf("undeliverable: %v", u.err)
				}
				if n := msgSeq(u.msg); n != 0 {
					failed = append(failed, n)
				}
			}
			if err := s.Send(ctxWait(t), []byte("later")); err != nil {
				t.Fatal(err)
			}
			if string(col.wait(t)[0]) != "later" {
				t.Fatal("new server got the wrong message")
			}
		})
	}
}

// proxy forwards connections to target. It can cut each connection after a
// random number of bytes (per direction) or black-hole all traffic.
type proxy struct {
	ln       net.Listener
	network  string
	target   string
	cutMax   int
	frozen   atomic.Bool
	accepted atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	seed     uint64
}

func newProxy(t *testing.T, target Addr, cutMax int) *proxy {
	p := &proxy{network: "tcp", target: target.Address, cutMax: cutMax, conns: map[net.Conn]struct{}{}, seed: rand.Uint64()}
	if target.Transport == Unix {
		p.network = "unix"
	}
	var err error
	if p.network == "unix" {
		p.ln, err = net.Listen("unix", "@"+randomName(24))
	} else {
		p.ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("proxy seed %d", p.seed)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() Addr {
	if p.network == "unix" {
		return Addr{Unix, p.ln.Addr().String()}
	}
	return Addr{TCP, p.ln.Addr().String()}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) accept() {
	defer p.wg.Done()
	rng := rand.New(rand.NewPCG(p.seed, 1))
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		u, err := net.Dial(p.network, p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c) || !p.track(u) {
			c.Close()
			u.Close()
			return
		}
		budget := func() int64 {
			if p.cutMax == 0 {
				return 1 << 62
			}
			return 1 + rng.Int64N(int64(p.cutMax))
		}
		p.wg.Add(2)
		go p.pipe(c, u, budget())
		go p.pipe(u, c, budget())
	}
}

func (p *proxy) pipe(dst, src net.Conn, budget int64) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for budget > 0 {
		n, err := src.Read(buf[:min(int64(len(buf)), budget)])
		if n > 0 && !p.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		budget -= int64(n)
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func TestFaultInjection(t *testing.T) {
	for _, tc := range netCases()[:3] {
		t.Run(tc.name, func(t *testing.T) {
			const n = 100000
			col := newCollector(n)
			var dup atomic.Int64
			var last atomic.Int64
			last.Store(-1)
			srv := mustServe(t, tc.addr(t), func(m []byte) {
				i := int64(msgSeq(m))
				if i != last.Load()+1 {
					dup.Add(1)
				}
				last.Store(i)
				col.handle(m)
			}, &Options{Logger: slog.New(slog.DiscardHandler)}) // every cut is logged
			p := newProxy(t, srv.Addr(), 256<<10)
			und := make(undeliverables, 10)
			s := mustDial(t, p.addr(), &Options{OnUndeliverable: und.fn, maxBackoff: 20 * time.Millisecond})
			for i := range n {
				s.Post(seqMsg(i))
				if i%1000 == 0 {
					// Let the sender interleave with failures rather than
					// queue everything up front.
					time.Sleep(0)
				}
			}
			msgs := col.wait(t)
			checkInOrder(t, msgs, n)
			if dup.Load() != 0 {
				t.Fatalf("%d out-of-order or duplicate deliveries", dup.Load())
			}
			select {
			case u := <-und:
				t.Fatalf("undeliverable: %v", u.err)
			default:
			}
			t.Logf("%d connections", p.accepted.Load())
			s.Close()
		})
	}
}

func TestKeepaliveServerClosesSilentConn(t *testing.T) {
	for _, tc := range netCases()[:3] {
		t.Run(tc.name, func(t *testing.T) {
			srv := mustServe(t, tc.addr(t), func([]byte) {}, &Options{KeepaliveInterval: 20 * time.Millisecond})
			c, br := rawClient(t, srv.Addr(), 20)
			// We read the server's pings but never answer or write.
			waitClosed(t, c, br)
		})
	}
}

func TestKeepaliveSenderReconnects(t *testing.T) {
	for _, tc := range netCases()[:3] {
		t.Run(tc.name, func(t *testing.T) {
			opts := &Options{KeepaliveInterval: 20 * time.Millisecond, maxBackoff: 20 * time.Millisecond}
			col := newCollector(2)
			srv := mustServe(t, tc.addr(t), col.handle, opts)
			p := newProxy(t, srv.Addr(), 0)
			s := mustDial(t, p.addr(), opts)
			if err := s.Send(ctxWait(t), []byte("one")); err != nil {
				t.Fatal(err)
			}
			p.frozen.Store(true)
			before := p.accepted.Load()
			s.Post([]byte("two"))
			deadline := time.Now().Add(testWait)
			for p.accepted.Load() == before {
				if time.Now().After(deadline) {
					t.Fatal("sender did not reconnect after its peer went silent")
				}
				time.Sleep(5 * time.Millisecond) // polling a counter, not synchronising
			}
			p.frozen.Store(false)
			msgs := col.wait(t)
			if string(msgs[1]) != "two" {
				t.Fatalf("got %q", msgs)
			}
		})
	}
}

// waitFor polls a condition that has no channel to wait on.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Server) isClosing() bool {
	if s.local != nil {
		return s.local.isClosed()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

var _ = bytes.Equal

// A handshake has one deadline in all: a client that trickles its hello
// in a byte at a time loses the connection when it passes, though every
// byte came sooner than the deadline.
func TestHandshakeDeadlineHolds(t *testing.T) {
	srv, err := Serve(Unix.Any(), func([]byte) {}, &Options{handshake: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("unix", srv.Addr().Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	var pre bytes.Buffer
	w := bufio.NewWriter(&pre)
	id := newID()
	if err := writePreamble(w, &hello{Version: protoVersion, Session: id[:]}); err != nil {
		t.Fatal(err)
	}
	// The preamble's magic and version, then a body of 140 bytes: one per
	// 20ms, 3s in all, ten times the deadline.
	trickle := append(pre.Bytes()[:10:10], make([]byte, 140)...)
	binary.BigEndian.PutUint32(trickle[6:], 140)
	for _, b := range trickle {
		select {
		case <-closed:
			return
		case <-time.After(20 * time.Millisecond): // the slow client under test
		}
		if _, err := c.Write([]byte{b}); err != nil {
			return // closed by the server
		}
	}
	t.Fatal("the server kept a connection whose hello took 3s, past its 300ms handshake deadline")
}
