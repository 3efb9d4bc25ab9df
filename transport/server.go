package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Server receives messages on one address and hands them to its Handler.
type Server struct {
	addr        Addr
	cfg         config
	h           ContinuingHandler
	local       *localServer
	ln          net.Listener
	incarnation [sessionIDSize]byte
	done        chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	conns     map[*serverConn]struct{}
	sessions  map[[sessionIDSize]byte]*session
	lastSweep time.Time

	// The continuation watchdog (see watch); the timer is guarded by mu.
	watchdog   *time.Timer
	watchArmed atomic.Bool

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// session is the receiver's state for one sender session. next is only
// advanced by the reader of the session's single live connection; a new
// connection waits for the previous reader to finish before taking over.
type session struct {
	id        [sessionIDSize]byte
	next      atomic.Uint64 // next expected seq
	conn      *serverConn   // live connection, guarded by Server.mu
	idleSince time.Time     // guarded by Server.mu
}

// Serve starts receiving on addr. An "any" address (Transport.Any, local:0,
// unix: with empty name, tcp port 0) binds a fresh one; Addr reports it.
func Serve(addr Addr, h Handler, opts *Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("transport: Serve: nil handler")
	}
	return ServeContinuing(addr, func(msg []byte) Continuation { h(msg); return nil }, opts)
}

// ServeContinuing is Serve with a handler that may hand back a
// Continuation to run on the delivering goroutine.
func ServeContinuing(addr Addr, h ContinuingHandler, opts *Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("transport: Serve: nil handler")
	}
	cfg := opts.config()
	s := &Server{
		cfg:         cfg,
		h:           h,
		incarnation: newID(),
		done:        make(chan struct{}),
		conns:       make(map[*serverConn]struct{}),
		sessions:    make(map[[sessionIDSize]byte]*session),
		lastSweep:   time.Now(),
	}
	switch addr.Transport {
	case Local:
		ls, err := serveLocal(addr, s)
		if err != nil {
			return nil, err
		}
		s.local = ls
		s.addr = Addr{Transport: Local, Address: strconv.FormatUint(ls.port, 10)}
		return s, nil
	case Unix:
		name := addr.Address
		if name == "" {
			name = "@" + randomName(24)
		}
		if _, err := ParseAddr("unix:" + name); err != nil {
			return nil, err
		}
		ln, err := listenUnix(name)
		if err != nil {
			return nil, fmt.Errorf("transport: serve %s: %w", addr, err)
		}
		s.ln = ln
		s.addr = Addr{Transport: Unix, Address: name}
	case TCP:
		hostport := addr.Address
		if hostport == "" {
			hostport = "[::1]:0"
		}
		lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: cfg.keepalive, Interval: cfg.keepalive, Count: 3}}
		ln, err := lc.Listen(context.Background(), "tcp", hostport)
		if err != nil {
			return nil, fmt.Errorf("transport: serve %s: %w", addr, err)
		}
		ta := ln.Addr().(*net.TCPAddr)
		ip := ta.IP.String()
		if ip4 := ta.IP.To4(); ip4 != nil {
			ip = ip4.String()
		}
		s.ln = ln
		s.addr = Addr{Transport: TCP, Address: net.JoinHostPort(ip, strconv.Itoa(ta.Port))}
	default:
		return nil, fmt.Errorf("transport: serve %s: unknown transport", addr)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func listenUnix(name string) (net.Listener, error) {
	ln, err := net.Listen("unix", name)
	if err == nil || strings.HasPrefix(name, "@") || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	// A socket file left by a dead process: reclaim it only if nobody answers.
	c, derr := net.DialTimeout("unix", name, time.Second)
	if derr == nil {
		c.Close()
		return nil, err
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, err
	}
	if rerr := os.Remove(name); rerr != nil {
		return nil, err
	}
	return net.Listen("unix", name)
}

// Addr returns the bound address.
func (s *Server) Addr() Addr { return s.addr }

// Close stops accepting, lets every connection flush a final ack and close,
// and waits until no handler runs any more. It must not be called from a
// Handler. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.local != nil {
			s.local.close()
			return
		}
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.stop()
			// A reader inside a continuation may stay there for as long
			// as a handler blocks: a fresh reader ends the connection.
			if c.turn.Load() != nil {
				c.takeOver()
			}
		}
		if s.watchdog != nil {
			s.watchdog.Stop()
		}
		s.mu.Unlock()
		close(s.done)
		s.ln.Close()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			// Out of file descriptors and the like: back off, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.log.Error("transport: accept failed", "addr", s.addr.String(), "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		tuneConn(c, s.cfg.keepalive)
		sc := &serverConn{srv: s, dc: newDeadlineConn(c, s.cfg.handshake), kick: make(chan struct{}, 1), stopW: make(chan struct{}), readerDone: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[sc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go sc.run()
	}
}

// serverConn is one accepted connection: run reads (and calls the handler),
// writeLoop writes acks, pongs and pings.
type serverConn struct {
	srv  *Server
	dc   *deadlineConn
	sess *session

	acked      atomic.Uint64 // next seq as of the last delivery; acks say acked-1
	ackArmed   atomic.Bool   // ackTimer will wake the writer to ack what was delivered
	ackTimer   *time.Timer
	pong       atomic.Bool
	kick       chan struct{}
	stopW      chan struct{} // closed when the reader is done: final ack, then close
	readerDone chan struct{} // closed when the reader no longer touches the session
	stopping   atomic.Bool   // the server (or a takeover) asked this conn to end
	writerDone chan struct{}

	// Owned by whichever goroutine is the connection's reader (see
	// runContinuation): the decoder and the delivery position.
	fr           frameReader
	next         uint64
	unacked      int
	unackedBytes int
	arrivals     arrivalClock
	turn         atomic.Pointer[readTurn] // the current reader's
	// Continuations started so far, and that count as of the watchdog's
	// previous look: unchanged while continuing means one continuation
	// has run for a whole watchdog period.
	continued     atomic.Uint64
	continuedSeen uint64 // the watchdog's
	closeCode     byte   // written before stopW is closed
	closeMsg      string
	keepalive     time.Duration

	// The reader writes acks and pongs itself when the writer is free
	// (a goroutine hand-off per delivery costs more than the write).
	wmu       sync.Mutex // guards bw, lastAck and broken
	bw        *bufio.Writer
	lastAck   uint64
	lastWrite time.Time
	broken    bool
}

// stop ends the connection on the server's or a newer connection's behalf.
func (c *serverConn) stop() {
	c.stopping.Store(true)
	c.dc.interruptRead()
	c.dc.capWrites(time.Now().Add(maxFinalFlush))
}

func (c *serverConn) logger() *slog.Logger {
	return c.srv.cfg.log.With("addr", c.srv.addr.String(), "peer", c.dc.RemoteAddr().String())
}

func (c *serverConn) run() {
	br := bufio.NewReaderSize(&c.arrivals, 64<<10)
	c.arrivals.r = c.dc
	bw := bufio.NewWriterSize(c.dc, 4<<10)
	if !c.handshake(br, bw) {
		close(c.readerDone)
		c.release()
		return
	}
	c.writerDone = make(chan struct{})
	c.bw = bw
	c.lastAck = c.acked.Load() // before the reader can move it
	c.lastWrite = time.Now()
	c.ackTimer = time.AfterFunc(time.Hour, c.poke)
	c.ackTimer.Stop()
	c.fr = frameReader{r: br, maxPayload: c.srv.cfg.maxFrame}
	c.next = c.sess.next.Load()
	c.turn.Store(new(readTurn))
	go func() {
		defer close(c.writerDone)
		c.writeLoop()
	}()
	c.read(c.turn.Load())
}

// finish ends the connection once its last reader is done.
func (c *serverConn) finish() {
	c.ackTimer.Stop()
	close(c.readerDone) // a newer connection of the session may take over now
	close(c.stopW)
	<-c.writerDone
	c.release()
}

// release forgets the connection and closes it.
func (c *serverConn) release() {
	s := c.srv
	s.mu.Lock()
	delete(s.conns, c)
	if c.sess != nil && c.sess.conn == c {
		c.sess.conn = nil
		c.sess.idleSince = time.Now()
	}
	s.mu.Unlock()
	c.dc.Close()
	s.wg.Done()
}

// handshake answers the client's hello and attaches the session; false means
// the connection is to be closed.
func (c *serverConn) handshake(br *bufio.Reader, bw *bufio.Writer) bool {
	s := c.srv
	// One deadline for the whole handshake: a client that trickles its
	// hello in byte by byte must not hold the connection for longer.
	c.dc.holdRead = true
	c.dc.SetDeadline(time.Now().Add(s.cfg.handshake))
	if c.dc.interrupted.Load() {
		return false
	}
	refuse := func(msg string) bool {
		c.logger().Warn("transport: refusing connection", "err", msg)
		writePreamble(bw, &helloReply{Version: protoVersion, Incarnation: s.incarnation[:], Delivered: -1, Error: "transport: " + msg})
		return false
	}
	v, body, err := readPreamble(br)
	if err != nil {
		if !c.stopping.Load() && !errors.Is(err, io.EOF) {
			c.logger().Warn("transport: bad handshake", "err", err)
		}
		return false
	}
	if v != protoVersion {
		return refuse(versionMismatch(protoVersion, v))
	}
	var h hello
	if err := msgpack.Unmarshal(body, &h); err != nil {
		return refuse("malformed hello: " + err.Error())
	}
	if len(h.Session) != sessionIDSize {
		return refuse(fmt.Sprintf("session id of %d bytes, want %d", len(h.Session), sessionIDSize))
	}
	peerKeepalive := time.Duration(min(max(h.KeepaliveMillis, 0), int64(time.Hour/time.Millisecond))) * time.Millisecond
	c.keepalive = s.cfg.keepalive
	c.dc.timeout = 3 * max(s.cfg.keepalive, peerKeepalive)

	sess, prev, ok := s.attach(c, [sessionIDSize]byte(h.Session), h.FirstSeq)
	if !ok {
		return false // server closing
	}
	if prev != nil {
		// One live connection per session: the old one may still be inside
		// the handler; wait so that deliveries stay serial and next exact.
		prev.stop()
		<-prev.readerDone
	}
	next := sess.next.Load()
	if h.FirstSeq > next {
		return refuse(fmt.Sprintf("session out of sequence: client resumes at seq %d, server expects %d", h.FirstSeq, next))
	}
	c.acked.Store(next)
	if err := writePreamble(bw, &helloReply{OK: true, Version: protoVersion, Incarnation: s.incarnation[:], Delivered: int64(next) - 1, KeepaliveMillis: s.cfg.keepalive.Milliseconds()}); err != nil {
		return false
	}
	c.dc.SetDeadline(time.Time{})
	c.dc.rdl, c.dc.wdl = time.Time{}, time.Time{}
	c.dc.holdRead = false
	return !c.dc.interrupted.Load()
}

// attach makes c the session's live connection and returns the previous one.
func (s *Server) attach(c *serverConn, id [sessionIDSize]byte, firstSeq uint64) (sess *session, prev *serverConn, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false
	}
	sess = s.sessions[id]
	if sess == nil {
		now := time.Now()
		if now.Sub(s.lastSweep) > s.cfg.sessionExpiry/4 {
			// Sweeping on insert bounds the table without a janitor goroutine.
			s.lastSweep = now
			for k, o := range s.sessions {
				if o.conn == nil && now.Sub(o.idleSince) > s.cfg.sessionExpiry {
					delete(s.sessions, k)
				}
			}
		}
		sess = &session{id: id}
		sess.next.Store(firstSeq)
		s.sessions[id] = sess
	}
	prev = sess.conn
	sess.conn = c
	c.sess = sess
	return sess, prev, true
}

// read is the reader's loop. The server acks everything delivered every
// ackEvery messages or ackBytes, ackDelay after a delivery at the latest,
// and at once on a ping (which a sender writes when it wants its acks now,
// e.g. for Send). Acking lazily spares both sides a write, a read and a
// wake-up per message. The final ack is written by writeLoop in finish.
func (c *serverConn) read(turn *readTurn) {
	s := c.srv
	sess := c.sess
	for {
		// Continuations wait until the frames already read are delivered:
		// then an actor's loop handles a whole batch in one go.
		if len(turn.pending) > 0 && (turn.held >= maxHeld || !c.fr.frameBuffered()) {
			if !c.runPending(turn) {
				return // another goroutine reads now
			}
		}
		f, err := c.fr.readFrame()
		if err != nil {
			switch {
			case c.stopping.Load() || errors.Is(err, io.EOF) || isClosedConnErr(err):
			case errors.Is(err, errProtocol):
				c.logger().Error("transport: closing connection on malformed input", "err", err)
				c.closeCode, c.closeMsg = closeRejected, err.Error()
			default:
				c.logger().Warn("transport: connection lost", "err", err)
			}
			c.end(turn)
			return
		}
		switch f.typ {
		case frameData:
			if c.stopping.Load() {
				// Closing: what is not delivered yet stays unacknowledged
				// and is the sender's to resend or report.
				c.end(turn)
				return
			}
			switch {
			case f.seq < c.next: // a resend of something already delivered
			case f.seq == c.next:
				n := len(f.payload)
				k := s.deliver(f.payload)
				c.next++
				sess.next.Store(c.next)
				c.acked.Store(c.next)
				c.unacked++
				c.unackedBytes += n
				if c.unacked >= ackEvery || c.unackedBytes >= ackBytes {
					c.unacked, c.unackedBytes = 0, 0
					c.ackInline()
				} else if !c.ackArmed.Load() {
					c.ackArmed.Store(true)
					c.ackTimer.Reset(ackDelay)
				}
				if k != nil {
					if !c.arrivals.busy && !s.cfg.alwaysBusy {
						// A lone message: the watchdog's wake-up after
						// it would cost more than this hand-off.
						s.dispatch(k)
					} else {
						turn.pending = append(turn.pending, k)
					}
				}
				if len(turn.pending) > 0 {
					turn.held++
				}
			default:
				msg := fmt.Sprintf("out-of-sequence message: expected seq %d, got %d", c.next, f.seq)
				c.logger().Error("transport: rejecting session", "err", msg)
				c.closeCode, c.closeMsg = closeRejected, msg
				c.end(turn)
				return
			}
		case framePing:
			// Also the sender's request for an ack of all it wrote before.
			c.unacked, c.unackedBytes = 0, 0
			c.pong.Store(true)
			c.ackInline()
		case framePong:
		case frameClose:
			c.end(turn)
			return
		default:
			c.logger().Error("transport: closing connection on unexpected frame", "type", f.typ)
			c.closeCode, c.closeMsg = closeRejected, fmt.Sprintf("unexpected frame type %d", f.typ)
			c.end(turn)
			return
		}
	}
}

// ackInline writes the pending ack (and pong) from the reader when the
// writer is not busy, and leaves it to the writer otherwise.
func (c *serverConn) ackInline() {
	if !c.wmu.TryLock() {
		c.poke()
		return
	}
	c.writeControlLocked(false)
	c.wmu.Unlock()
}

func (c *serverConn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (s *Server) deliver(msg []byte) (k Continuation) {
	defer func() {
		if r := recover(); r != nil {
			s.cfg.log.Error("transport: handler panicked; message counts as delivered", "addr", s.addr.String(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	return s.h(msg)
}

func (c *serverConn) writeLoop() {
	ticker := time.NewTicker(c.keepalive)
	defer ticker.Stop()
	for {
		final := false
		select {
		case <-c.kick:
		case <-ticker.C:
			c.wmu.Lock()
			if time.Since(c.lastWrite) >= c.keepalive && !c.broken {
				writeEmpty(c.bw, framePing)
			}
			c.wmu.Unlock()
		case <-c.stopW:
			final = true
		}
		c.wmu.Lock()
		c.writeControlLocked(final)
		c.wmu.Unlock()
		if final {
			return
		}
	}
}

// writeControlLocked writes the ack of everything delivered, a pong if
// one is due, and with final the close frame, then flushes. Called with
// wmu held.
func (c *serverConn) writeControlLocked(final bool) {
	if c.broken {
		// The reader will notice; keep draining kicks until it is done.
		return
	}
	bw := c.bw
	// Cleared before acked is read: a delivery that finds the flag
	// still set is covered by this ack.
	c.ackArmed.Store(false)
	if a := c.acked.Load(); a != c.lastAck {
		writeAck(bw, a-1)
		c.lastAck = a
	}
	if c.pong.Swap(false) {
		writeEmpty(bw, framePong)
	}
	if final {
		writeClose(bw, c.closeCode, c.closeMsg)
		c.dc.capWrites(time.Now().Add(maxFinalFlush))
	}
	if bw.Buffered() > 0 {
		if err := bw.Flush(); err != nil {
			// The reader will notice too; stop writing.
			c.broken = true
			c.dc.interruptRead()
		}
		c.lastWrite = time.Now()
	}
}
