package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// Sender sends messages to one address. It is one session: messages are
// delivered in order and at most once, exactly once while the receiving
// process lives and the delivery timeout is not exceeded. A Sender is safe
// for concurrent use. The caller must not modify a message after Post or Send.
type Sender struct {
	addr      Addr
	cfg       config
	notify    notifier
	local     *localSender
	coalesced atomic.Uint64 // messages merged by Coalesce

	network, address string

	mu          sync.Mutex
	q           ring // posted, not yet acknowledged; front is oldest
	written     int  // entries from q's front already written on the current connection
	nextSeq     uint64
	session     [sessionIDSize]byte
	incarnation []byte // the receiver's, as first seen by this session
	gen         uint64 // bumped when the session is reset; stale acks are ignored
	conn        net.Conn
	pongNeeded  bool
	ackWanted   bool // ask the receiver for an ack (with a ping) soon
	progress    bool // an ack arrived since the last connection attempt
	closed      bool
	timer       *time.Timer // ticks every timeoutTick while messages are pending
	timerArmed  bool
	epoch       uint64        // timer ticks so far
	room        chan struct{} // closed when the queue shrinks; see waitForRoomLocked

	kick      chan struct{}
	stop      chan struct{} // closed when the manager must exit
	stopOnce  sync.Once
	stopCtx   context.Context
	cancelCtx context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	bw    *bufio.Writer
	batch []entry

	// Inline writes: a Post that finds the writer idle on a live connection
	// writes its frame itself, without blocking, instead of waking the
	// writer goroutine (a goroutine hand-off costs more than the write).
	// All guarded by mu.
	raw        syscall.RawConn // the live connection, while writeLoop runs
	writerIdle bool            // writeLoop flushed everything and waits
	inlining   bool            // a Post is writing; nobody else may
	leftover   []byte          // what an inline write could not write yet
	inlineBuf  []byte          // owned by whoever is inlining
	inlineOp   rawWrite        // likewise
}

// rawWrite is a reusable non-blocking write through a RawConn, used by
// one goroutine at a time; a closure per write would cost three
// allocations a message.
type rawWrite struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // o.step, bound once
}

// write writes as much of b as the socket takes without waiting. It
// returns how much, and the error that stopped it other than EAGAIN.
func (o *rawWrite) write(raw syscall.RawConn, b []byte) (int, error) {
	if o.fn == nil {
		o.fn = o.step
	}
	o.b, o.n, o.err = b, 0, nil
	raw.Write(o.fn)
	n, err := o.n, o.err
	o.b, o.err = nil, nil
	return n, err
}

func (o *rawWrite) step(fd uintptr) bool {
	b := o.b
	for o.n < len(b) {
		// A raw syscall: the fd is non-blocking, and entering the
		// runtime's syscall state would wake sysmon in an idle process.
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[o.n])), uintptr(len(b)-o.n))
		if errno == 0 {
			o.n += int(r)
			continue
		}
		if errno == syscall.EINTR {
			continue
		}
		if errno != syscall.EAGAIN {
			o.err = errno
		}
		break
	}
	return true // never wait: the writer goroutine takes over
}

// maxInline bounds the messages written inline; bigger ones are not worth
// copying into the frame buffer and go through the writer.
const maxInline = 16 << 10

// directWriteMin is the size from which an owned message is written to the
// connection straight from its buffer rather than copied into the writer's.
const directWriteMin = 32 << 10

// maxQueued is the send window: a Post that would take the unacknowledged
// bytes past it waits for acks while the connection is up. Without it a
// fast producer queues without bound: memory grows, and every message is
// encoded into fresh, page-faulting memory instead of a recycled buffer.
// While the connection is down, Posts queue without waiting (the delivery
// timeout bounds that), so a dead peer never blocks a sender.
const maxQueued = 16 << 20

type entry struct {
	msg    []byte
	seq    uint64
	posted uint64 // s.epoch at Post: reading the clock per message is too slow
	sent   bool   // written on some connection of this session
	owned  bool   // msg is released to the buffer pool once acked
	// parts, when not nil, is the message (their concatenation, size
	// bytes), and msg is only the buffer to release (PostParts).
	parts  [][]byte
	size   int
	waiter chan error // Send's; nil for Post
	key    any        // PostKeyed's, for Coalesce; nil otherwise
}

// Dial returns a Sender for addr. It does not connect: that happens when
// the first message is posted, and reachability problems surface as
// undeliverable messages. It fails at once for a malformed or "any" address,
// and for a local port nobody serves (ErrClosed).
func Dial(addr Addr, opts *Options) (*Sender, error) {
	if addr.IsAny() {
		return nil, fmt.Errorf("transport: dial %s: cannot dial an unspecified address", addr)
	}
	parsed, err := ParseAddr(addr.String())
	if err != nil {
		return nil, fmt.Errorf("transport: dial: %w", err)
	}
	cfg := opts.config()
	s := &Sender{addr: addr, cfg: cfg}
	s.notify = notifier{fn: cfg.onUndeliverable, log: cfg.log}
	if parsed.Transport == Local {
		ls, err := dialLocal(parsed, cfg, &s.notify)
		if err != nil {
			return nil, err
		}
		s.local = ls
		return s, nil
	}
	s.network = "tcp"
	if parsed.Transport == Unix {
		s.network = "unix"
	}
	s.address = parsed.Address
	s.session = newID()
	s.kick = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.stopCtx, s.cancelCtx = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Addr returns the destination.
func (s *Sender) Addr() Addr { return s.addr }

// Post queues msg and returns at once. If it cannot be delivered, msg is
// handed to Options.OnUndeliverable with an *UndeliverableError.
func (s *Sender) Post(msg []byte) {
	if err := s.enqueue(msg, nil, nil, false, nil); err != nil {
		s.notify.push(undelivered{msg, &UndeliverableError{Addr: s.addr, Reason: err}})
	}
}

// PostRelease is Post that also hands msg's memory over to the Sender:
// once the receiver acknowledged msg, the Sender gives it to ReleaseBuffer
// (so msg is typically from AllocBuffer). The caller must not use msg, or
// anything sharing its memory, after the call. A message that cannot be
// delivered is not released: it goes to Options.OnUndeliverable, which
// then owns it. On a local channel the receiving handler owns msg.
func (s *Sender) PostRelease(msg []byte) {
	s.PostKeyed(msg, nil)
}

// PostKeyed is PostRelease for a message that later ones may be merged
// into (see Coalesce) while it waits for the connection; key is compared
// with ==, and nil means none.
func (s *Sender) PostKeyed(msg []byte, key any) {
	if err := s.enqueue(msg, nil, nil, true, key); err != nil {
		s.notify.push(undelivered{msg, &UndeliverableError{Addr: s.addr, Reason: err}})
	}
}

// Coalesce offers to merge a message into the last one posted: merge is
// called, under the Sender's lock, only if that message was posted with
// PostKeyed under key and the connection has not taken it yet (so it
// delays nothing that could have gone out). It gets the queued message and
// returns it, extended or not (it may move it into another buffer, to
// which PostRelease's rule then applies), and whether it merged; the
// result must not exceed limit bytes. Coalesce reports whether the message
// was merged; if not, the caller posts it. Merged messages are one message
// to the channel: acknowledged, resent, timed out and returned
// undeliverable together.
func (s *Sender) Coalesce(key any, merge func(last []byte, limit int) ([]byte, bool)) bool {
	if s.local != nil || key == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.q.len() <= s.written {
		return false
	}
	e := s.q.back()
	// Never into one written before, even on a connection since lost:
	// the receiver may have it, and would drop its resend as a duplicate.
	// Nor into one posted in an earlier tick of the delivery timeout's
	// clock, so that the merged message's timeout is as it would be alone.
	if e.key != key || e.sent || e.posted != s.epoch || e.parts != nil || e.waiter != nil {
		return false
	}
	b, merged := merge(e.msg, s.cfg.maxFrame)
	s.q.bytes += len(b) - e.size
	// A keyed message is PostRelease's: whatever buffer it is in now is
	// the Sender's to release.
	e.msg, e.size, e.owned = b, len(b), cap(b) >= minPooled
	if merged {
		s.coalesced.Add(1)
	}
	return merged
}

// Coalesced is how many messages Coalesce has merged so far.
func (s *Sender) Coalesced() uint64 { return s.coalesced.Load() }

// PostParts posts the message that is the concatenation of parts, without
// concatenating them: they are written one after the other. This spares
// copying large parts (say, a big byte slice inside a message) into one
// buffer. The parts are read until the message is acknowledged, so nobody
// may modify them meanwhile. own, if not nil, is handed over as with
// PostRelease: released once the message is acknowledged (parts may alias
// it). A message that cannot be delivered goes to Options.OnUndeliverable
// as one newly concatenated slice, and own is then not released. On a
// local channel the parts are concatenated at once.
func (s *Sender) PostParts(parts [][]byte, own []byte) {
	if err := s.enqueue(own, parts, nil, own != nil, nil); err != nil {
		s.notify.push(undelivered{joinParts(parts), &UndeliverableError{Addr: s.addr, Reason: err}})
	}
}

func joinParts(parts [][]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// message returns the entry's message in one piece.
func (e *entry) message() []byte {
	if e.parts != nil {
		return joinParts(e.parts)
	}
	return e.msg
}

var waiterPool = sync.Pool{New: func() any { return make(chan error, 1) }}

// Send is Post that waits until the receiver's handler returned for msg. On
// failure the error is an *UndeliverableError wrapping the reason (and msg is
// not given to OnUndeliverable); a ctx error leaves msg queued.
func (s *Sender) Send(ctx context.Context, msg []byte) error {
	w := waiterPool.Get().(chan error)
	if err := s.enqueue(msg, nil, w, false, nil); err != nil {
		waiterPool.Put(w)
		return &UndeliverableError{Addr: s.addr, Reason: err}
	}
	select {
	case err := <-w:
		waiterPool.Put(w)
		return err
	case <-ctx.Done():
		return ctx.Err() // w may still be written to: not reused
	}
}

func (s *Sender) enqueue(msg []byte, parts [][]byte, waiter chan error, owned bool, key any) error {
	size := len(msg)
	if parts != nil {
		size = 0
		for _, p := range parts {
			size += len(p)
		}
	}
	if size > s.cfg.maxFrame {
		return fmt.Errorf("%w: %d bytes, maximum %d", ErrFrameTooLarge, size, s.cfg.maxFrame)
	}
	// Only a buffer the pool would take back needs the care of an owned
	// one (see writeLoop); releasing a small one is a no-op anyway.
	owned = owned && cap(msg) >= minPooled
	if s.local != nil {
		if parts != nil {
			msg = joinParts(parts)
		}
		return s.local.enqueue(msg, waiter)
	}
	s.mu.Lock()
	s.waitForRoomLocked(size)
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	seq := s.nextSeq
	s.q.push(entry{msg: msg, seq: seq, posted: s.epoch, waiter: waiter, owned: owned, parts: parts, size: size, key: key})
	s.nextSeq++
	if !s.timerArmed {
		s.timerArmed = true
		if s.timer == nil {
			s.timer = time.AfterFunc(s.timeoutTick(), s.onTimer)
		} else {
			s.timer.Reset(s.timeoutTick())
		}
	}
	if s.writerIdle && s.raw != nil && !s.inlining && s.written == s.q.len()-1 && size <= maxInline && parts == nil && !s.pongNeeded && !s.ackWanted {
		s.writeInline(msg, seq, waiter != nil) // unlocks
		return nil
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// writeInline writes the just-queued message (the only unwritten one)
// with one non-blocking write; whatever does not fit in the socket buffer
// is left for the writer goroutine. Called with mu held; returns without.
func (s *Sender) writeInline(msg []byte, seq uint64, ping bool) {
	s.inlining = true
	s.writerIdle = false
	s.q.markSent(s.written)
	s.written++
	raw, gen := s.raw, s.gen
	b := s.inlineBuf[:0]
	s.inlineBuf = nil
	s.mu.Unlock()

	b = appendDataHeader(b, seq, len(msg))
	b = append(b, msg...)
	if ping {
		b = append(b, framePing, 0, 0, 0, 0)
	}
	n, werr := s.inlineOp.write(raw, b)

	s.mu.Lock()
	s.inlining = false
	kick := false
	if s.gen == gen && s.raw == raw {
		if werr != nil {
			// The connection is broken; the reader notices, and the
			// message is resent or reported like any other written one.
			if s.conn != nil {
				s.conn.Close()
			}
		} else if n < len(b) {
			s.leftover = append(s.leftover[:0], b[n:]...)
		}
		kick = s.leftover != nil || s.written < s.q.len() || s.pongNeeded || s.ackWanted || s.closed
		s.writerIdle = !kick
	} else {
		kick = true
	}
	if cap(b) <= 2*maxInline {
		s.inlineBuf = b[:0]
	}
	s.mu.Unlock()
	if kick {
		s.poke()
	}
}

// waitForRoomLocked waits, releasing mu meanwhile, until a message of size
// bytes fits in the send window, the connection is down, or the delivery
// timeout passes.
func (s *Sender) waitForRoomLocked(size int) {
	var deadline *time.Timer
	for s.q.bytes > 0 && s.q.bytes+size > maxQueued && s.conn != nil && !s.closed {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		if deadline == nil {
			deadline = time.NewTimer(s.cfg.deliveryTimeout)
			defer deadline.Stop()
		}
		select {
		case <-room:
			s.mu.Lock()
		case <-deadline.C:
			s.mu.Lock()
			return
		}
	}
}

// roomLocked wakes the Posts waiting for the window; they look again.
func (s *Sender) roomLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

func (s *Sender) poke() {
	if s.kick == nil {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Idle reports whether every message posted so far is acknowledged (or
// returned), and the Sender is open: closing it now loses nothing.
func (s *Sender) Idle() bool {
	if s.local != nil {
		return s.local.idle()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.q.len() == 0
}

// Close stops accepting messages, tries for a short bounded time to deliver
// what is queued, returns the rest as undeliverable (ErrClosed) and waits for
// the Sender's goroutines. It is idempotent.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		if s.local != nil {
			s.local.close()
			s.notify.wait()
			return
		}
		s.mu.Lock()
		s.closed = true
		s.roomLocked()
		empty := s.q.len() == 0
		s.ackWanted = !empty // the receiver acks lazily; waiting for that would slow Close down
		s.mu.Unlock()
		s.poke()
		var flush *time.Timer
		if empty {
			s.halt()
		} else {
			flush = time.AfterFunc(min(maxFlushOnClose, s.cfg.deliveryTimeout), s.halt)
		}
		s.wg.Wait()
		if flush != nil {
			flush.Stop()
		}
		s.halt()
		s.mu.Lock()
		failed := s.resetLocked(true)
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
		s.fail(failed, ErrClosed)
		s.notify.wait()
	})
	return nil
}

// halt makes the manager exit and aborts any connection attempt.
func (s *Sender) halt() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.cancelCtx()
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
	})
}

// Delivery timeouts are measured in ticks of timeoutTicks per timeout: a
// message times out between 1 and 1+1/timeoutTicks timeouts after its Post.
const timeoutTicks = 8

func (s *Sender) timeoutTick() time.Duration { return s.cfg.deliveryTimeout / timeoutTicks }

func (s *Sender) onTimer() {
	s.mu.Lock()
	s.epoch++
	if s.q.len() == 0 || s.closed && isClosed(s.stop) {
		s.timerArmed = false
		s.mu.Unlock()
		return
	}
	if s.epoch-s.q.front().posted <= timeoutTicks {
		s.timer.Reset(s.timeoutTick())
		// Acks are lazy; make sure a slow trickle is acked well within
		// the delivery timeout.
		ask := s.written > 0
		s.ackWanted = s.ackWanted || ask
		s.mu.Unlock()
		if ask {
			s.poke()
		}
		return
	}
	s.timerArmed = false
	failed := s.resetLocked(true)
	s.mu.Unlock()
	s.cfg.log.Warn("transport: messages not acknowledged within the delivery timeout", "addr", s.addr.String(), "count", len(failed), "timeout", s.cfg.deliveryTimeout)
	s.fail(failed, ErrDeliveryTimeout)
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// resetLocked starts a fresh session and drops the current connection. With
// all, every pending message is returned; otherwise only those written to the
// old receiver (which may or may not have got them), while the never-sent
// ones move to the new session in order.
func (s *Sender) resetLocked(all bool) []entry {
	var failed, kept []entry
	for s.q.len() > 0 {
		e := s.q.pop()
		if all || e.sent {
			failed = append(failed, e)
		} else {
			kept = append(kept, e)
		}
	}
	s.session = newID()
	s.incarnation = nil
	s.nextSeq = 0
	for _, e := range kept {
		e.seq = s.nextSeq
		s.nextSeq++
		s.q.push(e)
	}
	s.written = 0
	s.gen++
	s.raw, s.leftover, s.writerIdle = nil, nil, false
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	s.roomLocked()
	s.checkDrainedLocked()
	return failed
}

// checkDrainedLocked lets a closing Sender finish as soon as nothing is left.
func (s *Sender) checkDrainedLocked() {
	if s.closed && s.q.len() == 0 {
		go s.halt() // halt takes s.mu
	}
}

func (s *Sender) fail(entries []entry, reason error) {
	if len(entries) == 0 {
		return
	}
	items := make([]undelivered, 0, len(entries))
	for _, e := range entries {
		err := &UndeliverableError{Addr: s.addr, Reason: reason}
		if e.waiter != nil {
			e.waiter <- err
		} else {
			items = append(items, undelivered{e.message(), err})
		}
	}
	s.notify.push(items...)
}

// run is the manager: it connects while messages are pending, writes them,
// and reconnects with backoff.
func (s *Sender) run() {
	defer s.wg.Done()
	backoff := time.Duration(0)
	resets := 0 // session resets in a row without progress
	for {
		// Connect only when something is pending: an idle Sender with a dead
		// peer costs nothing.
		s.mu.Lock()
		for s.q.len() == 0 {
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-s.kick:
			case <-s.stop:
				return
			}
			s.mu.Lock()
		}
		s.mu.Unlock()
		if isClosed(s.stop) {
			return
		}

		start := time.Now()
		progress, err := s.connectAndServe()
		var retry bool
		switch {
		case err == nil, errors.Is(err, errResetSession):
			// Reconnect at once with the fresh session, but only once in a
			// row: a peer that keeps refusing gets the normal backoff.
			resets++
			retry = resets == 1
		case errors.Is(err, errTerminal):
		default:
			s.cfg.log.Debug("transport: connection failed", "addr", s.addr.String(), "err", err)
		}
		if progress || time.Since(start) > time.Second {
			backoff = 0
			resets = 0
		}
		if retry && backoff == 0 {
			continue
		}
		backoff = min(max(2*backoff, minBackoff), s.cfg.maxBackoff)
		// ±20% jitter keeps many senders of a restarted peer from
		// reconnecting in lockstep.
		d := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.stop:
			t.Stop()
			return
		}
	}
}

var (
	errResetSession = errors.New("transport: session reset")
	errTerminal     = errors.New("transport: pending messages failed")
	errPeerClosed   = errors.New("transport: peer closed the connection")
)

// connectAndServe runs one connection from dial to its end. progress says
// whether anything got acknowledged.
func (s *Sender) connectAndServe() (progress bool, err error) {
	d := net.Dialer{Timeout: min(maxDialTimeout, s.cfg.deliveryTimeout), KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: s.cfg.keepalive, Interval: s.cfg.keepalive, Count: 3}}
	c, err := d.DialContext(s.stopCtx, s.network, s.address)
	if err != nil {
		return false, err
	}
	tuneConn(c, s.cfg.keepalive)
	if s.network == "unix" {
		if c, err = quiet(c); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	if isClosed(s.stop) {
		s.mu.Unlock()
		c.Close()
		return false, net.ErrClosed
	}
	s.conn = c
	gen := s.gen
	h := hello{Version: protoVersion, Session: bytes.Clone(s.session[:]), FirstSeq: s.nextSeq, KeepaliveMillis: s.cfg.keepalive.Milliseconds()}
	if s.q.len() > 0 {
		h.FirstSeq = s.q.front().seq
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.conn == c {
			s.conn = nil
			s.roomLocked() // waiting Posts stop waiting
		}
		s.mu.Unlock()
		c.Close()
	}()

	dc := newDeadlineConn(c, 3*s.cfg.keepalive)
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(dc, 64<<10)
	} else {
		s.bw.Reset(dc)
	}
	br := bufio.NewReaderSize(dc, 4<<10)
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := writePreamble(s.bw, &h); err != nil {
		return false, err
	}
	v, body, err := readPreamble(br)
	if err != nil {
		return false, err
	}
	var r helloReply
	if err := msgpack.Unmarshal(body, &r); err != nil {
		return false, fmt.Errorf("%w: malformed handshake reply: %v", errProtocol, err)
	}
	if v != protoVersion || r.Version != protoVersion {
		peer := v
		if v == protoVersion {
			peer = r.Version
		}
		reason := fmt.Errorf("%w: %s (peer said: %q)", ErrVersion, versionMismatch(protoVersion, peer), r.Error)
		s.cfg.log.Error("transport: peer refused the connection", "addr", s.addr.String(), "err", reason)
		s.mu.Lock()
		failed := s.resetLocked(true)
		s.mu.Unlock()
		s.fail(failed, reason)
		return false, errTerminal
	}
	peerKeepalive := time.Duration(min(max(r.KeepaliveMillis, 0), int64(time.Hour/time.Millisecond))) * time.Millisecond
	dc.timeout = 3 * max(s.cfg.keepalive, peerKeepalive)

	s.mu.Lock()
	if s.gen != gen {
		s.mu.Unlock()
		return false, errResetSession
	}
	var reason error
	switch {
	case !r.OK:
		reason = fmt.Errorf("%w: receiver refused the session: %s", ErrReceiverReplaced, r.Error)
	case s.incarnation != nil && !bytes.Equal(s.incarnation, r.Incarnation):
		reason = ErrReceiverReplaced
	}
	if reason != nil {
		failed := s.resetLocked(false)
		s.mu.Unlock()
		s.cfg.log.Warn("transport: starting a fresh session", "addr", s.addr.String(), "reason", reason, "failed", len(failed))
		s.fail(failed, reason)
		return false, errResetSession
	}
	s.incarnation = bytes.Clone(r.Incarnation)
	s.progress = false
	s.ackLocked(r.Delivered)
	s.written = 0
	s.mu.Unlock()
	c.SetDeadline(time.Time{})
	dc.rdl, dc.wdl = time.Time{}, time.Time{}

	readerDone := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		readerDone <- s.readLoop(br, gen)
	}()
	err = s.writeLoop(dc, c, gen, readerDone)
	s.mu.Lock()
	progress = s.progress
	s.mu.Unlock()
	return progress, err
}

// ackLocked drops everything up to and including seq; delivered < 0 is a
// no-op. It reports whether anything was dropped.
func (s *Sender) ackLocked(seq int64) bool {
	if seq < 0 {
		return false
	}
	n := 0
	for s.q.len() > 0 && s.q.front().seq <= uint64(seq) {
		e := s.q.pop()
		if e.waiter != nil {
			e.waiter <- nil
		}
		if e.owned {
			// The receiver has it all, so no write still reads it: see
			// writeLoop, which never copies an owned message.
			ReleaseBuffer(e.msg)
		}
		n++
	}
	s.written = max(0, s.written-n)
	if n > 0 {
		s.progress = true
		s.roomLocked()
		s.checkDrainedLocked()
	}
	return n > 0
}

const maxWriteBatch = 256

// drainAfterWrite bounds how long a connection whose writing ended is
// kept for its reader (see writeLoop).
const drainAfterWrite = 100 * time.Millisecond

func (s *Sender) writeLoop(dc *deadlineConn, c net.Conn, gen uint64, readerDone chan error) (err error) {
	bw := s.bw
	ticker := time.NewTicker(s.cfg.keepalive)
	defer ticker.Stop()
	lastWrite := time.Now()
	wrote := false
	gotReader := false
	defer func() {
		if gotReader {
			return
		}
		// The peer may have sent more before we stopped writing: above
		// all, a receiver that is closing writes a final ack and then
		// its close frame, and our next write fails. Cutting the reader
		// off would lose that ack, and Close would then wait its whole
		// flush time for a peer that is gone. So half-close, and let the
		// reader take what is there, for a moment at most.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		t := time.NewTimer(drainAfterWrite)
		select {
		case e := <-readerDone:
			if err == nil {
				err = e
			}
		case <-t.C:
			dc.Close()
			if e := <-readerDone; err == nil {
				err = e
			}
		}
		t.Stop()
	}()
	s.mu.Lock()
	if raw, err := c.(syscall.Conn).SyscallConn(); err == nil && s.gen == gen {
		s.raw = raw
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.writerIdle = false
		if s.gen == gen {
			s.raw = nil
			s.leftover = nil
		}
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		s.writerIdle = false
		if s.gen != gen {
			s.mu.Unlock()
			return errResetSession
		}
		if s.inlining {
			// The inline writer kicks us when it is done.
			s.mu.Unlock()
			select {
			case <-s.kick:
			case err := <-readerDone:
				gotReader = true
				return err
			case <-s.stop:
				return net.ErrClosed
			}
			continue
		}
		if s.leftover != nil {
			bw.Write(s.leftover)
			s.leftover = nil
			wrote = true
		}
		batch := s.q.slice(s.batch[:0], s.written, maxWriteBatch)
		s.written += len(batch)
		pong := s.pongNeeded
		s.pongNeeded = false
		ping := s.ackWanted
		s.ackWanted = false
		s.mu.Unlock()
		for i := range batch {
			writeDataHeader(bw, batch[i].seq, batch[i].size)
			if batch[i].parts != nil {
				if err := writeParts(bw, dc, &batch[i]); err != nil {
					return err
				}
			} else if batch[i].owned && cap(batch[i].msg) >= directWriteMin {
				// Written straight to the connection, never copied into
				// bw: then only the write system call reads the memory,
				// and the kernel has copied all of it before the receiver
				// can ack it, so the release on ack follows the last
				// read. (A copy in user space would be a read the race
				// detector cannot order before the release: it does not
				// see the causality through the peer.)
				if err := bw.Flush(); err != nil {
					return err
				}
				if _, err := dc.Write(batch[i].msg); err != nil {
					return err
				}
			} else {
				bw.Write(batch[i].msg)
			}
			// A waiting Send needs its ack now: a ping makes the receiver
			// ack everything before it.
			ping = ping || batch[i].waiter != nil
			batch[i] = entry{}
		}
		s.batch = batch[:0]
		if pong {
			writeEmpty(bw, framePong)
		}
		if ping {
			writeEmpty(bw, framePing)
		}
		if len(batch) > 0 || pong || ping {
			wrote = true
			continue // coalesce: flush only once the queue is empty
		}
		if wrote {
			if err := bw.Flush(); err != nil {
				return err
			}
			wrote = false
			lastWrite = time.Now()
			continue // the queue may have grown meanwhile
		}
		s.mu.Lock()
		idle := s.gen == gen && s.written == s.q.len() && !s.pongNeeded && !s.ackWanted && s.leftover == nil && !s.inlining
		s.writerIdle = idle
		s.mu.Unlock()
		if !idle {
			continue
		}
		select {
		case <-s.kick:
		case err := <-readerDone:
			gotReader = true
			return err
		case <-ticker.C:
			if time.Since(lastWrite) >= s.cfg.keepalive {
				// Not straight into bw: the writer is idle, so a Post may
				// be writing a frame inline right now, and the ping must
				// follow all of it. A wanted ack is a ping, written at the
				// top of the loop once no inline write is under way.
				s.mu.Lock()
				s.ackWanted = true
				s.mu.Unlock()
			}
		case <-s.stop:
			// Closing: tell the receiver, so it does not log a lost
			// connection, and leave (not after half an inline frame).
			s.mu.Lock()
			torn := s.inlining || s.leftover != nil
			s.writerIdle = false
			s.mu.Unlock()
			if torn {
				return net.ErrClosed
			}
			writeClose(bw, closeNormal, "sender closed")
			dc.capWrites(time.Now().Add(100 * time.Millisecond))
			bw.Flush()
			return net.ErrClosed
		}
	}
}

// writeParts writes a PostParts message after its header: large parts
// straight to the connection, small ones through bw; every part when own
// may be pooled (see the owned case in writeLoop).
func writeParts(bw *bufio.Writer, w io.Writer, e *entry) error {
	direct := e.owned && cap(e.msg) >= directWriteMin
	for _, p := range e.parts {
		if !direct && len(p) < directWriteMin {
			bw.Write(p)
			continue
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// readLoop reads acks, pings and close frames from the receiver.
func (s *Sender) readLoop(br *bufio.Reader, gen uint64) error {
	// Only small control frames flow this way.
	fr := frameReader{r: br, maxPayload: 0}
	for {
		f, err := fr.readFrame()
		if err != nil {
			if errors.Is(err, errProtocol) {
				s.cfg.log.Error("transport: closing connection on malformed input", "addr", s.addr.String(), "err", err)
			}
			if err == io.EOF {
				err = errPeerClosed
			}
			return err
		}
		switch f.typ {
		case frameAck:
			s.mu.Lock()
			if s.gen == gen {
				s.ackLocked(int64(min(f.seq, 1<<63-1)))
			}
			s.mu.Unlock()
		case framePing:
			s.mu.Lock()
			s.pongNeeded = true
			s.mu.Unlock()
			select {
			case s.kick <- struct{}{}:
			default:
			}
		case framePong:
		case frameClose:
			code, msg := f.payload[0], string(f.payload[1:])
			if code != closeRejected {
				return errPeerClosed
			}
			reason := fmt.Errorf("%w: receiver rejected the session: %s", ErrReceiverReplaced, msg)
			s.mu.Lock()
			var failed []entry
			if s.gen == gen {
				failed = s.resetLocked(false)
			}
			s.mu.Unlock()
			s.cfg.log.Warn("transport: starting a fresh session", "addr", s.addr.String(), "reason", reason, "failed", len(failed))
			s.fail(failed, reason)
			return errResetSession
		default:
			s.cfg.log.Error("transport: closing connection on unexpected frame", "addr", s.addr.String(), "type", f.typ)
			return fmt.Errorf("%w: unexpected frame type %d", errProtocol, f.typ)
		}
	}
}

// ring is a FIFO of entries in linked fixed-size blocks: pushing never
// copies what is queued (a burst of millions of Posts stays O(1) each), and
// a drained block is kept for reuse.
type ring struct {
	head, tail *block
	hi, ti     int // first entry in head, next free slot in tail
	size       int
	bytes      int // the entries' message sizes, summed
	spare      *block
}

const blockSize = 256

type block struct {
	e    [blockSize]entry
	next *block
}

func (r *ring) len() int { return r.size }

func (r *ring) front() *entry { return &r.head.e[r.hi] }

// back is the last entry; the ring must not be empty.
func (r *ring) back() *entry { return &r.tail.e[r.ti-1] }

func (r *ring) newBlock() *block {
	if b := r.spare; b != nil {
		r.spare = nil
		return b
	}
	return new(block)
}

func (r *ring) push(e entry) {
	if r.tail == nil {
		r.head = r.newBlock()
		r.tail = r.head
	} else if r.ti == blockSize {
		b := r.newBlock()
		r.tail.next = b
		r.tail, r.ti = b, 0
	}
	r.tail.e[r.ti] = e
	r.ti++
	r.size++
	r.bytes += e.size
}

func (r *ring) pop() entry {
	e := r.head.e[r.hi]
	r.head.e[r.hi] = entry{} // let the message be collected
	r.hi++
	r.size--
	r.bytes -= e.size
	if r.size == 0 {
		r.hi, r.ti = 0, 0
		for r.head != r.tail { // only possible if the tail block is empty
			r.head = r.head.next
		}
	} else if r.hi == blockSize {
		old := r.head
		r.head, r.hi = old.next, 0
		old.next = nil
		r.spare = old
	}
	return e
}

// markSent marks the entry at offset from the front as sent.
func (r *ring) markSent(offset int) {
	b, i := r.head, r.hi+offset
	for i >= blockSize {
		b, i = b.next, i-blockSize
	}
	b.e[i].sent = true
}

// slice appends up to max entries starting at offset from the front to dst,
// marking them sent.
func (r *ring) slice(dst []entry, offset, max int) []entry {
	if offset >= r.size {
		return dst
	}
	b, i := r.head, r.hi+offset
	for i >= blockSize {
		b, i = b.next, i-blockSize
	}
	for n := min(max-len(dst), r.size-offset); n > 0; n-- {
		if i == blockSize {
			b, i = b.next, 0
		}
		b.e[i].sent = true
		dst = append(dst, b.e[i])
		i++
	}
	return dst
}
