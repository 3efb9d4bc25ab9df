package main

/*
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
	"github.com/vmihailenco/msgpack/v5"
)

// procObj is a proc created with mesh_proc_create.
type procObj struct {
	p    *core.Proc
	once sync.Once
}

// release shuts the proc down in the background.
func (o *procObj) release() {
	o.once.Do(func() {
		lib.mu.Lock()
		delete(lib.procs, o)
		lib.mu.Unlock()
		lib.goBackground(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			o.p.Shutdown(ctx)
		})
	})
}

// instObj is a client instance.
type instObj struct {
	inst *core.Instance
	h    *core.ActorHandle
	und  *undSource
}

func (o *instObj) release() {
	o.und.leavePoller()
	o.h.Stop("instance handle freed")
}

func (o *instObj) alive() error {
	if o.h.Status().Terminal() {
		return fail(statusEClosed, "libmesh: instance %s is stopped", o.inst.ID())
	}
	return nil
}

// waitCtx is the package's waitCtx for a blocking call on behalf of o,
// which must be alive.
func (o *instObj) waitCtx(timeoutMS int64) (context.Context, context.CancelFunc, error) {
	if err := o.alive(); err != nil {
		return nil, nil, err
	}
	return waitCtx(timeoutMS)
}

//export meshgo_proc_create
func meshgo_proc_create(addr, name *C.char, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) { return procCreate(addr, name, outOK) })
}

func procCreate(caddr, cname *C.char, outOK bool) (uint64, error) {
	if err := lib.ready(); err != nil {
		return 0, err
	}
	if err := needOut(outOK, "proc"); err != nil {
		return 0, err
	}
	name, err := goString(cname, "name")
	if err != nil {
		return 0, err
	}
	if !core.ValidName(name) {
		return 0, fail(statusEInval, "libmesh: invalid proc name %q: want a letter or '_' followed by letters, digits, '_', '-' or '.'", name)
	}
	addrText := goStringOr(caddr, "unix:")
	addr, err := transport.ParseAddr(addrText)
	if err != nil {
		return 0, fail(statusEInval, "libmesh: %v", err)
	}
	p, err := core.DirectProc(addr, name, &core.ProcOptions{Transport: transport.Options{MaxFrameSize: lib.frameSize()}})
	if err != nil {
		return 0, wrap(statusEInternal, err)
	}
	o := &procObj{p: p}
	h, err := lib.handles.add(kindProc, o)
	if err != nil {
		p.Shutdown(context.Background())
		return 0, err
	}
	lib.mu.Lock()
	lib.procs[o] = struct{}{}
	lib.mu.Unlock()
	return h, nil
}

//export meshgo_proc_id
func meshgo_proc_id(h C.uint64_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	o, err := get[*procObj](uint64(h), kindProc)
	if err == nil {
		err = needOut(out != nil, "id")
	}
	if err != nil {
		return ret(err)
	}
	setBufString(out, o.p.ID().String())
	return statusOK
}

//export meshgo_proc_spawn
func meshgo_proc_spawn(h C.uint64_t, cname, ctype *C.char, params *C.uint8_t, n C.size_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	id, err := procSpawn(uint64(h), cname, ctype, params, n)
	if err != nil {
		return ret(err)
	}
	if out != nil {
		setBuf(out, encodeActorID(id))
	}
	return statusOK
}

func procSpawn(h uint64, cname, ctype *C.char, cparams *C.uint8_t, n C.size_t) (core.ActorID, error) {
	o, err := get[*procObj](h, kindProc)
	if err != nil {
		return core.ActorID{}, err
	}
	name, err := goString(cname, "name")
	if err != nil {
		return core.ActorID{}, err
	}
	typeName, err := goString(ctype, "type_name")
	if err != nil {
		return core.ActorID{}, err
	}
	if err := checkSize(int(n), "params"); err != nil {
		return core.ActorID{}, err
	}
	params, err := goBytes(cparams, n, "params")
	if err != nil {
		return core.ActorID{}, err
	}
	if len(params) > 0 {
		if err := validMsgpack(params, "params"); err != nil {
			return core.ActorID{}, err
		}
	}
	if !core.ValidName(name) {
		return core.ActorID{}, fail(statusEInval, "libmesh: invalid actor name %q", name)
	}
	ah, err := o.p.SpawnType(name, typeName, params)
	switch {
	case err == nil:
		return ah.ID(), nil
	case strings.Contains(err.Error(), core.ErrUnknownActorType.Error()):
		return core.ActorID{}, fail(statusENotFound, "libmesh: %v", err)
	case strings.Contains(err.Error(), core.ErrNameTaken.Error()):
		return core.ActorID{}, fail(statusEInval, "libmesh: %v", err)
	}
	return core.ActorID{}, wrap(statusEInternal, err)
}

//export meshgo_instance_create
func meshgo_instance_create(h C.uint64_t, cname *C.char, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) { return instanceCreate(uint64(h), cname, outOK) })
}

func instanceCreate(h uint64, cname *C.char, outOK bool) (uint64, error) {
	o, err := get[*procObj](h, kindProc)
	if err != nil {
		return 0, err
	}
	if err := needOut(outOK, "inst"); err != nil {
		return 0, err
	}
	name, err := goString(cname, "name")
	if err != nil {
		return 0, err
	}
	inst, ah, err := o.p.Instance(name)
	if err != nil {
		if strings.Contains(err.Error(), core.ErrProcStopped.Error()) {
			return 0, fail(statusEClosed, "libmesh: %v", err)
		}
		return 0, fail(statusEInval, "libmesh: %v", err)
	}
	io := &instObj{inst: inst, h: ah}
	io.und = &undSource{inst: io}
	ih, err := lib.handles.add(kindInstance, io)
	if err != nil {
		ah.Stop("no handle")
		return 0, err
	}
	return ih, nil
}

//export meshgo_instance_id
func meshgo_instance_id(h C.uint64_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	o, err := get[*instObj](uint64(h), kindInstance)
	if err == nil {
		err = needOut(out != nil, "id")
	}
	if err != nil {
		return ret(err)
	}
	setBuf(out, encodeActorID(o.inst.ID()))
	return statusOK
}

// ---- ids -----------------------------------------------------------------

// idCache keeps the msgpack form of the few actor ids a process hears
// from, so that receiving does not encode the sender every time. Bounded.
var idCache = struct {
	sync.Mutex
	m map[core.ActorID][]byte
}{m: map[core.ActorID][]byte{}}

func encodeActorID(id core.ActorID) []byte {
	idCache.Lock()
	b, ok := idCache.m[id]
	idCache.Unlock()
	if ok {
		return b
	}
	b, err := msgpack.Marshal(id)
	if err != nil {
		panic(err) // ids always encode
	}
	idCache.Lock()
	if len(idCache.m) >= 4096 {
		clear(idCache.m)
	}
	idCache.m[id] = b
	idCache.Unlock()
	return b
}

// decodeRef parses a msgpack port reference or actor id; an actor id means
// the actor's message port.
func decodeRef(b []byte) (core.PortID, error) {
	refCache.Lock()
	pid, ok := refCache.m[string(b)]
	refCache.Unlock()
	if ok {
		return pid, nil
	}
	pid, err := parseRef(b)
	if err != nil {
		return pid, err
	}
	refCache.Lock()
	if len(refCache.m) >= 4096 {
		clear(refCache.m)
	}
	refCache.m[string(b)] = pid
	refCache.Unlock()
	return pid, nil
}

// refCache keeps the few destinations a process sends to, decoded. Bounded.
var refCache = struct {
	sync.Mutex
	m map[string]core.PortID
}{m: map[string]core.PortID{}}

func parseRef(b []byte) (core.PortID, error) {
	if len(b) == 0 {
		return core.PortID{}, fail(statusEInval, "libmesh: ref is empty: want a msgpack port reference or actor id")
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	var pid core.PortID
	var err error
	switch b[0] {
	case 0x94:
		var aid core.ActorID
		err = dec.Decode(&aid)
		pid = aid.Port(core.ActorPort)
	case 0x95:
		err = dec.Decode(&pid)
	default:
		return core.PortID{}, fail(statusEInval, "libmesh: ref is not a msgpack port reference (array of 5) or actor id (array of 4): first byte 0x%02x", b[0])
	}
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d trailing bytes", r.Len())
	}
	if err == nil && (pid.Actor.Proc.Addr.Transport == 0 || pid.Actor.Name == "") {
		err = fmt.Errorf("it names no actor")
	}
	if err != nil {
		return core.PortID{}, fail(statusEInval, "libmesh: malformed ref: %v", err)
	}
	return pid, nil
}

// ---- sending ---------------------------------------------------------------

//export meshgo_send
func meshgo_send(h C.uint64_t, ref *C.uint8_t, refLen C.size_t, ctype *C.char, payload *C.uint8_t, n C.size_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	o, err := get[*instObj](uint64(h), kindInstance)
	if err == nil {
		err = o.alive()
	}
	if err != nil {
		return ret(err)
	}
	return ret(send(o.inst, ref, refLen, ctype, payload, n))
}

// send is mesh_send for any sender instance.
func send(inst *core.Instance, cref *C.uint8_t, refLen C.size_t, ctype *C.char, cpayload *C.uint8_t, n C.size_t) error {
	refBytes, err := goBytes(cref, refLen, "ref")
	if err != nil {
		return err
	}
	dest, err := decodeRef(refBytes)
	if err != nil {
		return err
	}
	if cpayload == nil && n != 0 {
		return fail(statusEInval, "libmesh: payload is NULL but its length is %d", uint64(n))
	}
	if err := checkSize(int(n), "payload"); err != nil {
		return err
	}
	payload, err := goBytes(cpayload, n, "payload")
	if err != nil {
		return err
	}
	if err := validMsgpack(payload, "payload"); err != nil {
		return err
	}
	typeName := goStringOr(ctype, "")
	if err := inst.PostEncoded(dest, typeName, payload, nil); err != nil {
		return wrap(statusEInternal, err)
	}
	return nil
}

// ---- undeliverable messages ---------------------------------------------------

// undSource reads an instance's undeliverable messages (for
// mesh_next_undeliverable and pollers).
type undSource struct {
	inst *instObj
	pollerRef
}

func (s *undSource) notify() <-chan struct{} { return s.inst.inst.Undeliverables().Notify() }

func (s *undSource) tryNext() (outMsg, bool, error) {
	u, ok, err := s.inst.inst.Undeliverables().TryRecv()
	if err != nil {
		return outMsg{}, false, fail(statusEClosed, "libmesh: instance %s is stopped: %v", s.inst.inst.ID(), err)
	}
	if !ok {
		return outMsg{}, false, nil
	}
	m := outMsg{kind: msgKindUndeliver, rank: -1, typ: u.Type, payload: u.Body, text: u.Error()}
	if m.payload == nil && u.Message != nil {
		m.payload, _ = msgpack.Marshal(u.Message)
	}
	m.sender, _ = msgpack.Marshal(u.Dest)
	return m, true, nil
}

func (s *undSource) name() string {
	return fmt.Sprintf("undeliverable messages of %s", s.inst.inst.ID())
}

//export meshgo_next_undeliverable
func meshgo_next_undeliverable(h C.uint64_t, timeoutMS C.int64_t, out *C.mesh_msg_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroMsg(out)
	o, err := get[*instObj](uint64(h), kindInstance)
	if err == nil {
		err = needOut(out != nil, "msg")
	}
	if err != nil {
		return ret(err)
	}
	return receive(o.und, int64(timeoutMS), out)
}
