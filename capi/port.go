package main

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/spin"
	"github.com/actormesh/actormesh/mesh"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"
)

// outMsg is a message on its way to a mesh_msg_t.
type outMsg struct {
	kind    int32
	rank    int32
	typ     string
	payload []byte
	sender  []byte
	text    string
}

func (m *outMsg) fill(out *C.mesh_msg_t) {
	out.kind = C.int32_t(m.kind)
	out.rank = C.int32_t(m.rank)
	setBufString(&out._type, m.typ)
	setBuf(&out.payload, m.payload)
	setBuf(&out.sender, m.sender)
	setBufString(&out.text, m.text)
}

// source is something a receiver or a poller reads messages from.
type source interface {
	// tryNext returns the next message if one is queued; an error means
	// the source is closed and drained.
	tryNext() (outMsg, bool, error)
	// notify has a value whenever messages may be waiting.
	notify() <-chan struct{}
	poller() *pollerRef
	name() string
}

// pollerRef records which poller, if any, a source belongs to.
type pollerRef struct {
	mu sync.Mutex
	p  *pollerObj
}

func (r *pollerRef) poller() *pollerRef { return r }

func (r *pollerRef) current() *pollerObj {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// leavePoller removes the source from its poller, if any.
func (r *pollerRef) leavePoller() {
	if p := r.current(); p != nil {
		p.removeRef(r)
	}
}

// receive waits up to timeoutMS for src's next message. Waits are sliced,
// so a wait re-checks its state regularly even if a wake-up were lost.
func receive(src source, timeoutMS int64, out *C.mesh_msg_t) C.int32_t {
	if timeoutMS < -1 {
		return ret(fail(statusEInval, "libmesh: timeout_ms is %d: want -1 (no limit), 0 or a positive number of milliseconds", timeoutMS))
	}
	if timeoutMS != 0 && src.poller().current() != nil {
		return ret(errInPoller(src))
	}
	var deadline time.Time
	if timeoutMS > 0 {
		deadline = time.Now().Add(time.Duration(timeoutMS) * time.Millisecond)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if rc, done := takeNext(src, out); done {
			return rc
		}
		if timeoutMS == 0 {
			return info(statusAgain, "libmesh: nothing to receive")
		}
		if lib.ctx.Err() != nil {
			return ret(fail(statusEClosed, "libmesh: the library is shutting down"))
		}
		slice := time.Duration(defaultWaitSlice)
		if timeoutMS > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return info(statusTimeout, fmt.Sprintf("libmesh: nothing received within %d ms", timeoutMS))
			}
			slice = min(slice, left)
		}
		if timer == nil {
			timer = time.NewTimer(slice)
		} else {
			timer.Reset(slice)
		}
		select {
		case <-src.notify():
		case <-timer.C:
		case <-lib.ctx.Done():
		}
	}
}

// portObj is a raw port: the receiving side of a port for C.
type portObj struct {
	id   core.PortID
	rx   *core.RawReceiver
	inst *instObj
	pollerRef

	smu  sync.Mutex
	subs []*core.PortReceiver[mesh.MeshFailure] // supervision subscriptions feeding this port

	wmu sync.Mutex
	w   *waiter // the eventfd that blocking receives wait on in C
}

// waiter wakes a blocking mesh_port_recv. The receiving thread spins on
// state for a while, then sleeps on ch, both inside meshgo_port_wait; the
// delivering goroutine signals it itself (RawReceiver.OnDeliver), and
// sends on ch only if the thread sleeps. Sleeping inside Go rather than in
// C matters: a thread that returned to C keeps its P in the system-call
// state, so the goroutine that must deliver the message may find no P
// until the runtime's monitor takes that one back (with GOMAXPROCS=1 a
// round trip took 200 µs instead of 75).
type waiter struct {
	state atomic.Int32
	ch    chan struct{}
}

const (
	waitIdle int32 = iota
	waitSpinning
	waitSleeping
	waitSignalled
)

// wake signals the receive waiting on w, if any.
func (w *waiter) wake() {
	for {
		switch s := w.state.Load(); s {
		case waitSpinning:
			if w.state.CompareAndSwap(s, waitSignalled) {
				return
			}
		case waitSleeping:
			if w.state.CompareAndSwap(s, waitSignalled) {
				select {
				case w.ch <- struct{}{}:
				default:
				}
				return
			}
		default:
			return // nobody waits, or already signalled
		}
	}
}

// wait spins for a while (internal/spin), then sleeps for up to slice,
// until w is signalled.
func (w *waiter) wait(slice time.Duration) {
	spin.Until(spin.Duration(), func() bool { return w.state.Load() != waitSpinning })
	if !w.state.CompareAndSwap(waitSpinning, waitSleeping) {
		return // signalled
	}
	t := time.NewTimer(slice)
	defer t.Stop()
	select {
	case <-w.ch:
	case <-t.C:
	}
}

// wakeFd adds one to an eventfd. The write never blocks (the fd is
// non-blocking; EAGAIN only means the counter is saturated, so readable
// anyway), so it is a raw system call: a plain one enters the runtime's
// system call state, which in an idle process wakes its monitor thread.
func wakeFd(fd int) {
	one := uint64(1)
	unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one)), 8)
}

// armWaiter starts the port's waiter if needed and arms it for a receive.
func (p *portObj) armWaiter() *waiter {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.w == nil {
		p.w = &waiter{ch: make(chan struct{}, 1)}
		p.rx.OnDeliver(p.w.wake)
	}
	w := p.w
	select {
	case <-w.ch: // a wake-up that came after the last sleep ended
	default:
	}
	w.state.Store(waitSpinning)
	return w
}

// stopWaiter ends the waiter (before a poller takes the notifications
// over, or when the port goes away), waking a receive blocked on it.
func (p *portObj) stopWaiter() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	w := p.w
	if w == nil {
		return
	}
	p.w = nil
	p.rx.OnDeliver(nil)
	w.state.Store(waitSignalled)
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (p *portObj) notify() <-chan struct{} { return p.rx.Notify() }
func (p *portObj) name() string            { return fmt.Sprintf("messages of port %s", p.id) }

func (p *portObj) tryNext() (outMsg, bool, error) {
	m, ok, err := p.rx.TryRecv()
	if err != nil {
		return outMsg{}, false, fail(statusEClosed, "libmesh: port %s: %v", p.id, err)
	}
	if !ok {
		return outMsg{}, false, nil
	}
	return rawToOut(m), true, nil
}

// rawToOut converts a received message; supervision events forwarded by
// mesh_supervise are recognised by their type.
func rawToOut(m core.RawMessage) outMsg {
	o := outMsg{kind: msgKindData, rank: -1, typ: m.Type, payload: m.Body, sender: encodeActorID(m.Sender)}
	if m.Type == supervisionType {
		var f mesh.MeshFailure
		if err := msgpack.Unmarshal(m.Body, &f); err == nil {
			o.kind = msgKindSupervise
			o.text = f.Error()
			if len(f.Ranks) > 0 {
				o.rank = int32(f.Ranks[0])
			}
		}
	}
	return o
}

func (p *portObj) close() {
	p.rx.Close()
	p.smu.Lock()
	subs := p.subs
	p.subs = nil
	p.smu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

func (p *portObj) release() {
	p.leavePoller()
	p.close()
	p.stopWaiter()
}

//export meshgo_port_wait
func meshgo_port_wait(h C.uint64_t, out *C.mesh_msg_t, sliceMs C.int32_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	p, err := receivingPort(h, out)
	if err != nil {
		return ret(err)
	}
	if p.poller().current() != nil {
		return ret(errInPoller(p))
	}
	if rc, done := takeNext(p, out); done {
		return rc
	}
	// Arm, then look once more, so that a message that came before
	// arming is not left waiting for a wake-up.
	w := p.armWaiter()
	if rc, done := takeNext(p, out); done {
		return rc
	}
	w.wait(time.Duration(sliceMs) * time.Millisecond)
	if rc, done := takeNext(p, out); done {
		return rc
	}
	return statusAgain
}

// receivingPort clears out and returns the port of a receive into it.
func receivingPort(h C.uint64_t, out *C.mesh_msg_t) (*portObj, error) {
	zeroMsg(out)
	p, err := get[*portObj](uint64(h), kindPort)
	if err == nil {
		err = needOut(out != nil, "msg")
	}
	return p, err
}

// takeNext fills out with src's next message, if one is queued or
// the port is done; done reports whether it was.
func takeNext(src source, out *C.mesh_msg_t) (rc C.int32_t, done bool) {
	m, ok, err := src.tryNext()
	switch {
	case err != nil:
		return ret(err), true
	case ok:
		m.fill(out)
		return statusOK, true
	}
	return 0, false
}

func errInPoller(src source) error {
	return fail(statusEInval, "libmesh: %s belong to a poller: read them with mesh_poller_next (or without waiting)", src.name())
}

//export meshgo_port_open
func meshgo_port_open(h C.uint64_t, once C.int32_t, port *C.uint64_t, ref *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if port != nil {
		*port = 0
	}
	zeroBuf(ref)
	o, err := get[*instObj](uint64(h), kindInstance)
	if err == nil {
		err = needOut(port != nil, "port")
	}
	if err == nil {
		err = o.alive()
	}
	if err != nil {
		return ret(err)
	}
	id, rx := core.OpenRawPort(o.inst, once != 0)
	p := &portObj{id: id, rx: rx, inst: o}
	ph, err := lib.handles.add(kindPort, p)
	if err != nil {
		rx.Close()
		return ret(err)
	}
	*port = C.uint64_t(ph)
	if ref != nil {
		b, err := msgpack.Marshal(id)
		if err != nil {
			panic(err)
		}
		setBuf(ref, b)
	}
	return statusOK
}

//export meshgo_port_recv
func meshgo_port_recv(h C.uint64_t, timeoutMS C.int64_t, out *C.mesh_msg_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	p, err := receivingPort(h, out)
	if err != nil {
		return ret(err)
	}
	return receive(p, int64(timeoutMS), out)
}

//export meshgo_port_close
func meshgo_port_close(h C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	p, err := get[*portObj](uint64(h), kindPort)
	if err != nil {
		return ret(err)
	}
	p.close()
	return statusOK
}

// ---- pollers -------------------------------------------------------------------

// pollerObj fans sources into one eventfd. Each source has a watcher
// goroutine that turns its notifications into a write to the fd when the
// poller is armed (after next() found nothing).
type pollerObj struct {
	fd int

	mu      sync.Mutex
	entries []*pollEntry
	next    int // round-robin start
	armed   bool
	closed  bool
}

type pollEntry struct {
	src  source
	tag  uint64
	stop chan struct{}
	done chan struct{}
	// unhook, for a raw port, removes the delivery hook that signals the
	// poller in place of a watch goroutine.
	unhook func()
}

func (p *pollerObj) watch(e *pollEntry) {
	defer close(e.done)
	defer func() { _ = recover() }()
	for {
		select {
		case <-e.src.notify():
			p.signal()
		case <-e.stop:
			return
		}
	}
}

// signal makes the fd readable if the poller is armed. The write is under
// the lock, as is every use of the fd: release closes it under the lock,
// and its number may then name another file of the program's.
func (p *pollerObj) signal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed && !p.closed {
		wakeFd(p.fd)
	}
	p.armed = false
}

func (p *pollerObj) removeRef(r *pollerRef) {
	p.mu.Lock()
	var gone *pollEntry
	for i, e := range p.entries {
		if e.src.poller() == r {
			gone = e
			p.entries = append(p.entries[:i], p.entries[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if gone != nil {
		detach(gone)
	}
}

func detach(e *pollEntry) {
	r := e.src.poller()
	r.mu.Lock()
	r.p = nil
	r.mu.Unlock()
	if e.unhook != nil {
		e.unhook()
	}
	close(e.stop)
	<-e.done
}

func (p *pollerObj) release() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	entries := p.entries
	p.entries = nil
	p.mu.Unlock()
	for _, e := range entries {
		detach(e)
	}
	p.mu.Lock()
	unix.Close(p.fd)
	p.mu.Unlock()
}

//export meshgo_poller_create
func meshgo_poller_create(fd *C.int, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = 0
	}
	if fd != nil {
		*fd = -1
	}
	if err := lib.ready(); err != nil {
		return ret(err)
	}
	if fd == nil || out == nil {
		return ret(fail(statusEInval, "libmesh: mesh_poller_create needs both out-parameters (fd, poller)"))
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return ret(fail(statusEInternal, "libmesh: eventfd: %v", err))
	}
	p := &pollerObj{fd: efd}
	h, err := lib.handles.add(kindPoller, p)
	if err != nil {
		unix.Close(efd)
		return ret(err)
	}
	*fd = C.int(efd)
	*out = C.uint64_t(h)
	return statusOK
}

// sourceOf resolves a port or instance handle to its source.
func sourceOf(h uint64) (source, error) {
	if kind(h>>56) == kindInstance {
		o, err := get[*instObj](h, kindInstance)
		if err != nil {
			return nil, err
		}
		return o.und, nil
	}
	p, err := get[*portObj](h, kindPort)
	if err != nil {
		return nil, fail(statusEBadHandle, "%v (a poller source is a port or an instance)", err)
	}
	return p, nil
}

//export meshgo_poller_add
func meshgo_poller_add(ph, sh, tag C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	p, err := get[*pollerObj](uint64(ph), kindPoller)
	if err != nil {
		return ret(err)
	}
	src, err := sourceOf(uint64(sh))
	if err != nil {
		return ret(err)
	}
	if port, ok := src.(*portObj); ok {
		port.stopWaiter() // the poller takes the notifications over
	}
	r := src.poller()
	r.mu.Lock()
	if r.p != nil {
		r.mu.Unlock()
		return ret(fail(statusEInval, "libmesh: %s already belong to a poller", src.name()))
	}
	r.p = p
	r.mu.Unlock()
	e := &pollEntry{src: src, tag: uint64(tag), stop: make(chan struct{}), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		r.mu.Lock()
		r.p = nil
		r.mu.Unlock()
		return ret(fail(statusEClosed, "libmesh: the poller is closed"))
	}
	p.entries = append(p.entries, e)
	p.mu.Unlock()
	if port, ok := src.(*portObj); ok {
		// The delivering goroutine signals the poller itself.
		port.rx.OnDeliver(p.signal)
		e.unhook = func() { port.rx.OnDeliver(nil) }
		close(e.done)
	} else {
		go p.watch(e)
	}
	p.signal() // messages may be queued already
	return statusOK
}

//export meshgo_poller_remove
func meshgo_poller_remove(ph, sh C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	p, err := get[*pollerObj](uint64(ph), kindPoller)
	if err != nil {
		return ret(err)
	}
	src, err := sourceOf(uint64(sh))
	if err != nil {
		return ret(err)
	}
	if src.poller().current() == p {
		p.removeRef(src.poller())
	}
	return statusOK
}

//export meshgo_poller_next
func meshgo_poller_next(ph C.uint64_t, tag *C.uint64_t, out *C.mesh_msg_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroMsg(out)
	if tag != nil {
		*tag = 0
	}
	p, err := get[*pollerObj](uint64(ph), kindPoller)
	if err == nil {
		err = needOut(tag != nil && out != nil, "tag or msg")
	}
	if err != nil {
		return ret(err)
	}
	if p.poll(tag, out) {
		return statusOK
	}
	// Nothing: clear the fd, arm it, and look once more, so a message that
	// arrived before arming is not left waiting for a wake-up.
	var buf [8]byte
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ret(fail(statusEClosed, "libmesh: the poller was freed"))
	}
	unix.Read(p.fd, buf[:]) // non-blocking
	p.armed = true
	p.mu.Unlock()
	if p.poll(tag, out) {
		return statusOK
	}
	return info(statusAgain, "libmesh: nothing to receive")
}

// poll returns the next message of any source, round-robin; a closed
// source yields one MESH_MSG_CLOSED and leaves the poller.
func (p *pollerObj) poll(tag *C.uint64_t, out *C.mesh_msg_t) bool {
	p.mu.Lock()
	entries := append([]*pollEntry(nil), p.entries...)
	start := p.next
	p.mu.Unlock()
	for i := range entries {
		e := entries[(start+i)%len(entries)]
		m, ok, err := e.src.tryNext()
		if err != nil {
			p.removeRef(e.src.poller())
			m = outMsg{kind: msgKindClosed, rank: -1, text: err.Error()}
			ok = true
		}
		if ok {
			p.mu.Lock()
			p.next = (start + i + 1) % max(len(entries), 1)
			p.mu.Unlock()
			*tag = C.uint64_t(e.tag)
			m.fill(out)
			return true
		}
	}
	return false
}
