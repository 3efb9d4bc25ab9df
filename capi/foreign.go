package main

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
)

// foreignType is an actor type implemented by C callbacks. Pointers from C
// are kept as integers: Go never dereferences them.
type foreignType struct {
	name                    string
	create, handle, destroy uintptr
	user                    uintptr
}

var foreignTypes = struct {
	sync.RWMutex
	m map[string]*foreignType
}{m: map[string]*foreignType{}}

func lookupForeign(name string) *foreignType {
	foreignTypes.RLock()
	defer foreignTypes.RUnlock()
	return foreignTypes.m[name]
}

//export meshgo_register_actor_type
func meshgo_register_actor_type(cname *C.char, create, handle, destroy, user C.uintptr_t, hasVT C.int) (rc C.int32_t) {
	defer recoverTo(&rc)
	if lib.state.Load() == stateClosed {
		return ret(lib.ready())
	}
	name, err := goString(cname, "name")
	if err != nil {
		return ret(err)
	}
	if name == "" || reservedType(name) {
		return ret(fail(statusEInval, "libmesh: actor type name %q is empty or reserved (names starting with mesh., alloc., actormesh. or capi. belong to the runtime)", name))
	}
	if hasVT == 0 {
		return ret(fail(statusEInval, "libmesh: vtable is NULL"))
	}
	if create == 0 || handle == 0 {
		return ret(fail(statusEInval, "libmesh: the vtable of %q needs create and handle callbacks", name))
	}
	t := &foreignType{name: name, create: uintptr(create), handle: uintptr(handle), destroy: uintptr(destroy), user: uintptr(user)}
	foreignTypes.Lock()
	foreignTypes.m[name] = t
	foreignTypes.Unlock()
	core.RegisterActorFactory(name, func(params []byte) (core.Actor, error) { return newForeignActor(t, params) })
	return statusOK
}

// worker is the OS thread on which one foreign actor's callbacks run.
type worker struct {
	reqs chan func()
	ack  chan struct{}
	done chan struct{}
}

func startWorker() *worker {
	w := &worker{reqs: make(chan func()), ack: make(chan struct{}), done: make(chan struct{})}
	go func() {
		// Never unlocked: the thread ends with the actor, so whatever the
		// callbacks left in its thread-locals goes with it.
		runtime.LockOSThread()
		defer close(w.done)
		for f := range w.reqs {
			func() {
				defer func() {
					if r := recover(); r != nil {
						slog.Error("libmesh: panic around a foreign actor callback", "panic", r)
					}
				}()
				f()
			}()
			w.ack <- struct{}{}
		}
	}()
	return w
}

// do runs f on the worker's thread and waits for it.
func (w *worker) do(f func()) {
	w.reqs <- f
	<-w.ack
}

func (w *worker) stop() {
	close(w.reqs)
	<-w.done
}

// foreignActor is one actor of a foreign type.
type foreignActor struct {
	t       *foreignType
	w       *worker
	state   uintptr
	alive   *atomic.Bool // destroy not yet run; shared with the GC cleanup
	started *atomic.Bool // Init ran: Cleanup, not the GC, tears down
}

// newForeignActor runs create on a fresh worker thread. If the actor is
// never started (its spawn failed after the factory), a GC cleanup runs
// destroy and ends the thread.
func newForeignActor(t *foreignType, params []byte) (core.Actor, error) {
	if len(params) == 1 && params[0] == 0xc0 {
		params = nil // msgpack nil: no parameters
	}
	w := startWorker()
	var rc C.int32_t
	var state C.uintptr_t
	w.do(func() {
		var p *C.uint8_t
		if len(params) > 0 {
			p = (*C.uint8_t)(unsafe.Pointer(&params[0]))
		}
		rc = C.meshc_call_create(C.uintptr_t(t.create), C.uintptr_t(t.user), p, C.size_t(len(params)), &state)
	})
	if rc != 0 {
		w.stop()
		return nil, fmt.Errorf("capi: create callback of foreign actor type %q returned %d", t.name, int32(rc))
	}
	a := &foreignActor{t: t, w: w, state: uintptr(state), alive: new(atomic.Bool)}
	a.alive.Store(true)
	started := new(atomic.Bool)
	a.started = started
	runtime.AddCleanup(a, func(c cleanupArgs) {
		if !c.started.Load() && c.alive.CompareAndSwap(true, false) {
			c.w.do(func() { callDestroy(c.t, c.state) })
			c.w.stop()
		}
	}, cleanupArgs{t: t, w: w, state: uintptr(state), alive: a.alive, started: started})
	return a, nil
}

type cleanupArgs struct {
	t       *foreignType
	w       *worker
	state   uintptr
	alive   *atomic.Bool
	started *atomic.Bool
}

func callDestroy(t *foreignType, state uintptr) {
	if t.destroy != 0 {
		C.meshc_call_destroy(C.uintptr_t(t.destroy), C.uintptr_t(state))
	}
}

// Init marks the actor as started: from now on Cleanup owns its teardown.
func (a *foreignActor) Init(cx *core.Context) error {
	a.started.Store(true)
	return nil
}

// Cleanup runs destroy on the actor's thread and ends the thread.
func (a *foreignActor) Cleanup(cx *core.Context, err error) error {
	if a.alive.CompareAndSwap(true, false) {
		a.w.do(func() { callDestroy(a.t, a.state) })
		a.w.stop()
	}
	return nil
}

// call is one handle callback in progress; its ctx id names it to C.
type call struct {
	inst    *core.Instance
	self    core.ActorID
	rank    int
	reply   *core.PortRef[mesh.MethodReply]
	replied atomic.Bool
}

var (
	ctxSeq atomic.Uint64
	calls  sync.Map // ctx id → *call
)

// Handle passes the message to the C handle callback on the actor's thread.
func (a *foreignActor) Handle(cx *core.Context, msg any) error {
	c := &call{inst: cx.Instance, self: cx.ID(), rank: -1}
	var method string
	var payload []byte
	if mc, ok := msg.(mesh.MethodCall); ok {
		method, payload = mc.Method, mc.Payload
		r := mc.Reply
		c.reply = &r
	} else {
		typeName, body, err := core.EncodeMessage(msg)
		if err != nil {
			slog.Warn("libmesh: foreign actor dropped a message it cannot encode", "actor", cx.ID(), "error", err)
			return nil
		}
		method, payload = typeName, body
	}
	if ci, ok := mesh.CastInfoOf(cx); ok {
		c.rank = ci.Rank
	}
	id := ctxSeq.Add(1)
	calls.Store(id, c)
	cmethod := append([]byte(method), 0)
	var rc C.int32_t
	a.w.do(func() {
		var p *C.uint8_t
		if len(payload) > 0 {
			p = (*C.uint8_t)(unsafe.Pointer(&payload[0]))
		}
		rc = C.meshc_call_handle(C.uintptr_t(a.t.handle), C.uintptr_t(a.state), C.uint64_t(id),
			(*C.char)(unsafe.Pointer(&cmethod[0])), p, C.size_t(len(payload)))
	})
	calls.Delete(id)
	if c.reply != nil && !c.replied.Load() {
		text := fmt.Sprintf("foreign actor %s (type %q): method %q returned %d without replying", cx.ID(), a.t.name, method, int32(rc))
		if err := c.reply.Send(cx, mesh.MethodReply{Err: text}); err != nil {
			slog.Warn("libmesh: cannot answer a method call", "actor", cx.ID(), "error", err)
		}
	}
	if rc != 0 {
		return fmt.Errorf("foreign actor type %q: handle(%q) returned %d", a.t.name, method, int32(rc))
	}
	return nil
}

func lookupCall(ctx C.uintptr_t) (*call, error) {
	v, ok := calls.Load(uint64(ctx))
	if !ok || ctx == 0 {
		return nil, fail(statusEState, "libmesh: ctx %#x is not a callback in progress (a ctx is valid only during its handle callback)", uint64(ctx))
	}
	return v.(*call), nil
}

//export meshgo_ctx_reply
func meshgo_ctx_reply(ctx C.uintptr_t, cpayload *C.uint8_t, n C.size_t, cmsg *C.char, isErr C.int) (rc C.int32_t) {
	defer recoverTo(&rc)
	c, err := lookupCall(ctx)
	if err != nil {
		return ret(err)
	}
	if c.reply == nil {
		return ret(fail(statusEState, "libmesh: the message being handled is not a method call: there is nothing to reply to"))
	}

	var reply mesh.MethodReply
	if isErr != 0 {
		reply.Err = goStringOr(cmsg, "")
		if reply.Err == "" {
			reply.Err = "foreign actor answered an error without text"
		}
	} else {
		if err := checkSize(int(n), "reply"); err != nil {
			return ret(err)
		}
		b, err := goBytes(cpayload, n, "payload")
		if err != nil {
			return ret(err)
		}
		if len(b) > 0 {
			if err := validMsgpack(b, "reply"); err != nil {
				return ret(err)
			}
		}
		reply.Payload = b
	}
	if !c.replied.CompareAndSwap(false, true) {
		return ret(fail(statusEState, "libmesh: this method call was answered already"))
	}
	if err := c.reply.Send(c.inst, reply); err != nil {
		return ret(wrap(statusEInternal, err))
	}
	return statusOK
}

//export meshgo_ctx_rank
func meshgo_ctx_rank(ctx C.uintptr_t, out *C.int32_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = -1
	}
	c, err := lookupCall(ctx)
	if err == nil {
		err = needOut(out != nil, "rank")
	}
	if err != nil {
		return ret(err)
	}
	*out = C.int32_t(c.rank)
	return statusOK
}

//export meshgo_ctx_self
func meshgo_ctx_self(ctx C.uintptr_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	c, err := lookupCall(ctx)
	if err == nil {
		err = needOut(out != nil, "id")
	}
	if err != nil {
		return ret(err)
	}
	setBuf(out, encodeActorID(c.self))
	return statusOK
}

//export meshgo_ctx_send
func meshgo_ctx_send(ctx C.uintptr_t, ref *C.uint8_t, refLen C.size_t, ctype *C.char, payload *C.uint8_t, n C.size_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	c, err := lookupCall(ctx)
	if err != nil {
		return ret(err)
	}
	return ret(send(c.inst, ref, refLen, ctype, payload, n))
}

// ---- bootstrap ------------------------------------------------------------------

//export meshgo_bootstrap_requested
func meshgo_bootstrap_requested() (rc C.int32_t) {
	defer recoverTo(&rc)
	if os.Getenv(alloc.EnvBootstrapMode) != "" || os.Getenv(alloc.EnvBootstrapAddr) != "" {
		return 1
	}
	return 0
}

//export meshgo_bootstrap_main
func meshgo_bootstrap_main() (rc C.int32_t) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "bootstrap: internal panic: %v\n", r)
			rc = 1
		}
	}()
	return C.int32_t(mesh.BootstrapMain())
}
