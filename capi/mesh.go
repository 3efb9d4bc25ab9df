package main

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/transport"
	"github.com/vmihailenco/msgpack/v5"
)

type allocObj struct{ pa *alloc.ProcessAllocator }

type hostMeshObj struct {
	hm    *mesh.HostMesh
	owner *instObj
}

// shutdown shuts the host mesh down on behalf of by (nil: its owner). A
// stopped instance cannot open the ports the shutdown needs, so the
// library's fallback owner stands in for it. A shutdown that ran out of
// time can be called again, and waits for the rest; once one succeeded,
// mesh_shutdown has nothing left to do for the mesh.
func (h *hostMeshObj) shutdown(ctx context.Context, by *instObj) error {
	if by == nil {
		by = h.owner
	}
	inst := by.inst
	if by.h.Status().Terminal() {
		fb, err := lib.fallbackInstance()
		if err != nil {
			return err
		}
		inst = fb
	}
	if err := h.hm.Shutdown(ctx, inst); err != nil {
		return err
	}
	lib.mu.Lock()
	delete(lib.hosts, h)
	lib.mu.Unlock()
	return nil
}

type procMeshObj struct {
	pm *mesh.ProcMesh
}

// actorMeshObj is an actor mesh or a slice (a view) of one.
type actorMeshObj struct {
	view   *mesh.ActorMesh[core.Actor]
	shared *actorMeshShared
}

// actorMeshShared is what every view of one actor mesh shares.
type actorMeshShared struct {
	full    *mesh.ActorMesh[core.Actor]
	pm      *mesh.ProcMesh
	stopped atomic.Bool
}

type valueMeshObj struct {
	extent  alloc.Extent
	results []result
}

type result struct {
	status int32
	data   []byte
}

//export meshgo_allocator_process
func meshgo_allocator_process(cprog *C.char, cargs, cenv **C.char, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = 0
	}
	if err := lib.ready(); err != nil {
		return ret(err)
	}
	if out == nil {
		return ret(needOut(false, "alloc"))
	}
	prog, err := goString(cprog, "program")
	if err != nil {
		return ret(err)
	}
	if prog == "" {
		return ret(fail(statusEInval, "libmesh: program is empty"))
	}
	args, err := goStrings(cargs, "args")
	if err != nil {
		return ret(err)
	}
	env, err := goStrings(cenv, "env")
	if err != nil {
		return ret(err)
	}
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return ret(fail(statusEInval, "libmesh: env entry %q is not KEY=VALUE", kv))
		}
	}
	if st, err := os.Stat(prog); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return ret(fail(statusEInval, "libmesh: program %q is not an executable file", prog))
	}
	pa := alloc.NewProcessAllocator(alloc.Command{Path: prog, Args: args, Env: env})
	h, err := lib.handles.add(kindAllocator, &allocObj{pa: pa})
	if err != nil {
		return ret(err)
	}
	*out = C.uint64_t(h)
	return statusOK
}

func parseExtent(c *C.char, what string) (alloc.Extent, error) {
	e, err := alloc.ParseExtent(goStringOr(c, ""))
	if err != nil {
		return alloc.Extent{}, fail(statusEInval, "libmesh: %s: %v", what, err)
	}
	return e, nil
}

func meshName(c *C.char, what string) (string, error) {
	name, err := goString(c, what)
	if err != nil {
		return "", err
	}
	if !core.ValidName(name) {
		return "", fail(statusEInval, "libmesh: invalid %s %q: want a letter or '_' followed by letters, digits, '_', '-' or '.'", what, name)
	}
	return name, nil
}

//export meshgo_host_mesh_allocate
func meshgo_host_mesh_allocate(ih, ah C.uint64_t, cextent, cname *C.char, timeoutMS C.int64_t, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) {
		return hostMeshAllocate(uint64(ih), uint64(ah), cextent, cname, int64(timeoutMS), outOK)
	})
}

func hostMeshAllocate(ih, ah uint64, cextent, cname *C.char, timeoutMS int64, outOK bool) (uint64, error) {
	inst, a, err := withInstance[*allocObj](ih, ah, kindAllocator)
	if err != nil {
		return 0, err
	}
	if err := needOut(outOK, "hm"); err != nil {
		return 0, err
	}
	extent, err := parseExtent(cextent, "extent")
	if err != nil {
		return 0, err
	}
	name, err := meshName(cname, "host mesh name")
	if err != nil {
		return 0, err
	}
	ctx, cancel, err := inst.waitCtx(timeoutMS)
	if err != nil {
		return 0, err
	}
	defer cancel()
	al, err := a.pa.Allocate(ctx, alloc.Spec{Extent: extent, Transport: transport.Unix})
	if err != nil {
		return 0, opErr(ctx, wrap(statusEInternal, err))
	}
	hm, err := mesh.AllocateHostMesh(ctx, inst.inst, al, name, nil)
	if err != nil {
		return 0, opErr(ctx, wrap(statusEInternal, err))
	}
	o := &hostMeshObj{hm: hm, owner: inst}
	lib.mu.Lock()
	lib.hosts[o] = struct{}{}
	lib.mu.Unlock()
	h, err := lib.handles.add(kindHostMesh, o)
	if err != nil {
		return 0, err // mesh_shutdown still shuts it down
	}
	return h, nil
}

//export meshgo_host_mesh_spawn
func meshgo_host_mesh_spawn(ih, hh C.uint64_t, cname, cper *C.char, timeoutMS C.int64_t, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) {
		return hostMeshSpawn(uint64(ih), uint64(hh), cname, cper, int64(timeoutMS), outOK)
	})
}

func hostMeshSpawn(ih, hh uint64, cname, cper *C.char, timeoutMS int64, outOK bool) (uint64, error) {
	inst, hm, err := withInstance[*hostMeshObj](ih, hh, kindHostMesh)
	if err != nil {
		return 0, err
	}
	if err := needOut(outOK, "pm"); err != nil {
		return 0, err
	}
	name, err := meshName(cname, "proc mesh name")
	if err != nil {
		return 0, err
	}
	per, err := parseExtent(cper, "per_host")
	if err != nil {
		return 0, err
	}
	ctx, cancel, err := inst.waitCtx(timeoutMS)
	if err != nil {
		return 0, err
	}
	defer cancel()
	pm, err := hm.hm.Spawn(ctx, inst.inst, name, per)
	if err != nil {
		if strings.Contains(err.Error(), "is shut down") {
			return 0, fail(statusEClosed, "libmesh: %v", err)
		}
		if strings.Contains(err.Error(), "mesh: proc mesh") && !strings.Contains(err.Error(), "spawning") {
			return 0, fail(statusEInval, "libmesh: %v", err)
		}
		return 0, opErr(ctx, wrap(statusEInternal, err))
	}
	return lib.handles.add(kindProcMesh, &procMeshObj{pm: pm})
}

func stopOp(ih uint64, timeoutMS int64, op func(ctx context.Context, inst *instObj) error) error {
	inst, err := get[*instObj](ih, kindInstance)
	if err != nil {
		return err
	}
	ctx, cancel, err := waitCtx(timeoutMS)
	if err != nil {
		return err
	}
	defer cancel()
	return opErr(ctx, wrap(statusEInternal, op(ctx, inst)))
}

//export meshgo_host_mesh_stop
func meshgo_host_mesh_stop(ih, hh C.uint64_t, timeoutMS C.int64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	hm, err := get[*hostMeshObj](uint64(hh), kindHostMesh)
	if err != nil {
		return ret(err)
	}
	return ret(stopOp(uint64(ih), int64(timeoutMS), func(ctx context.Context, inst *instObj) error {
		return hm.hm.Stop(ctx, inst.inst)
	}))
}

//export meshgo_host_mesh_shutdown
func meshgo_host_mesh_shutdown(ih, hh C.uint64_t, timeoutMS C.int64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	hm, err := get[*hostMeshObj](uint64(hh), kindHostMesh)
	if err != nil {
		return ret(err)
	}
	return ret(stopOp(uint64(ih), int64(timeoutMS), func(ctx context.Context, inst *instObj) error {
		return hm.shutdown(ctx, inst)
	}))
}

//export meshgo_proc_mesh_stop
func meshgo_proc_mesh_stop(ih, ph C.uint64_t, timeoutMS C.int64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	pm, err := get[*procMeshObj](uint64(ph), kindProcMesh)
	if err != nil {
		return ret(err)
	}
	return ret(stopOp(uint64(ih), int64(timeoutMS), func(ctx context.Context, inst *instObj) error {
		return pm.pm.Stop(ctx, inst.inst)
	}))
}

//export meshgo_actor_mesh_spawn
func meshgo_actor_mesh_spawn(ih, ph C.uint64_t, cname, ctype *C.char, cparams *C.uint8_t, n C.size_t, timeoutMS C.int64_t, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) {
		return actorMeshSpawn(uint64(ih), uint64(ph), cname, ctype, cparams, n, int64(timeoutMS), outOK)
	})
}

func actorMeshSpawn(ih, ph uint64, cname, ctype *C.char, cparams *C.uint8_t, n C.size_t, timeoutMS int64, outOK bool) (uint64, error) {
	inst, pm, err := withInstance[*procMeshObj](ih, ph, kindProcMesh)
	if err != nil {
		return 0, err
	}
	if err := needOut(outOK, "am"); err != nil {
		return 0, err
	}
	name, err := meshName(cname, "actor mesh name")
	if err != nil {
		return 0, err
	}
	typeName, err := goString(ctype, "type_name")
	if err != nil {
		return 0, err
	}
	if typeName == "" || reservedType(typeName) {
		return 0, fail(statusEInval, "libmesh: actor type %q is reserved or empty (names starting with %s belong to the runtime)", typeName, strings.Join(reservedPrefixes, ", "))
	}
	if err := checkSize(int(n), "params"); err != nil {
		return 0, err
	}
	params, err := goBytes(cparams, n, "params")
	if err != nil {
		return 0, err
	}
	if len(params) > 0 {
		if err := validMsgpack(params, "params"); err != nil {
			return 0, err
		}
	}
	ctx, cancel, err := inst.waitCtx(timeoutMS)
	if err != nil {
		return 0, err
	}
	defer cancel()
	m, err := mesh.SpawnNamed(ctx, inst.inst, pm.pm, name, typeName, params)
	if err != nil {
		if statusOf(err) == statusENotFound {
			return 0, fail(statusENotFound, "libmesh: %v", err)
		}
		if errors.Is(err, mesh.ErrNameInUse) {
			return 0, fail(statusEInval, "libmesh: %v", err)
		}
		return 0, opErr(ctx, wrap(statusEInternal, err))
	}
	return lib.handles.add(kindActorMesh, &actorMeshObj{view: m, shared: &actorMeshShared{full: m, pm: pm.pm}})
}

//export meshgo_actor_mesh_size
func meshgo_actor_mesh_size(h C.uint64_t, out *C.int32_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = 0
	}
	am, err := get[*actorMeshObj](uint64(h), kindActorMesh)
	if err == nil {
		err = needOut(out != nil, "size")
	}
	if err != nil {
		return ret(err)
	}
	*out = C.int32_t(am.view.Extent().NumRanks())
	return statusOK
}

//export meshgo_actor_mesh_actor_id
func meshgo_actor_mesh_actor_id(h C.uint64_t, rank C.int32_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	am, err := get[*actorMeshObj](uint64(h), kindActorMesh)
	if err == nil {
		err = needOut(out != nil, "id")
	}
	if err != nil {
		return ret(err)
	}
	vals := am.view.Values()
	if rank < 0 || int(rank) >= len(vals) {
		return ret(fail(statusEInval, "libmesh: rank %d out of range: the mesh has %d ranks", int32(rank), len(vals)))
	}
	setBuf(out, encodeActorID(vals[rank].ID))
	return statusOK
}

//export meshgo_actor_mesh_slice
func meshgo_actor_mesh_slice(h C.uint64_t, cdim *C.char, from, to C.int32_t, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = 0
	}
	am, err := get[*actorMeshObj](uint64(h), kindActorMesh)
	if err == nil {
		err = needOut(out != nil, "out")
	}
	if err != nil {
		return ret(err)
	}
	dim, err := goString(cdim, "dim")
	if err != nil {
		return ret(err)
	}
	if _, ok := am.view.Extent().Size(dim); !ok {
		return ret(fail(statusENotFound, "libmesh: no dimension %q in %s", dim, am.view.Extent()))
	}
	sub, err := am.view.Slice(dim, int(from), int(to))
	if err != nil {
		return ret(fail(statusEInval, "libmesh: %v", err))
	}
	sh, err := lib.handles.add(kindActorMesh, &actorMeshObj{view: sub, shared: am.shared})
	if err != nil {
		return ret(err)
	}
	*out = C.uint64_t(sh)
	return statusOK
}

//export meshgo_actor_mesh_stop
func meshgo_actor_mesh_stop(ih, h C.uint64_t, timeoutMS C.int64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	am, err := get[*actorMeshObj](uint64(h), kindActorMesh)
	if err != nil {
		return ret(err)
	}
	return ret(stopOp(uint64(ih), int64(timeoutMS), func(ctx context.Context, inst *instObj) error {
		am.shared.stopped.Store(true)
		return am.shared.full.Stop(ctx, inst.inst)
	}))
}

//export meshgo_extent
func meshgo_extent(h C.uint64_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	if err := lib.ready(); err != nil {
		return ret(err)
	}
	var e alloc.Extent
	switch k := kind(h >> 56); k {
	case kindHostMesh:
		o, err := get[*hostMeshObj](uint64(h), k)
		if err != nil {
			return ret(err)
		}
		e = o.hm.Extent()
	case kindProcMesh:
		o, err := get[*procMeshObj](uint64(h), k)
		if err != nil {
			return ret(err)
		}
		e = o.pm.Extent()
	case kindActorMesh:
		o, err := get[*actorMeshObj](uint64(h), k)
		if err != nil {
			return ret(err)
		}
		e = o.view.Extent()
	case kindValueMesh:
		o, err := get[*valueMeshObj](uint64(h), k)
		if err != nil {
			return ret(err)
		}
		e = o.extent
	default:
		return ret(fail(statusEBadHandle, "libmesh: 0x%016x is not a host, proc, actor or value mesh handle", uint64(h)))
	}
	if out == nil {
		return ret(needOut(false, "extent"))
	}
	setBufString(out, e.String())
	return statusOK
}

// ---- cast and call ------------------------------------------------------------

// checkCastable refuses casts to stopped meshes and to views with failed
// ranks, as mesh.ActorMesh.Cast does.
func (am *actorMeshObj) checkCastable() error {
	if am.shared.stopped.Load() {
		return fail(statusEClosed, "libmesh: actor mesh %q is stopped", am.view.Name())
	}
	var failures []mesh.MeshFailure
	for r := range am.view.Extent().NumRanks() {
		if f, bad := am.view.Failure(r); bad {
			failures = append(failures, f)
		}
	}
	if len(failures) > 0 {
		return fail(statusESupervise, "libmesh: %v", &mesh.MeshError{Mesh: am.view.Name(), Failures: failures})
	}
	return nil
}

// cast sends an encoded message to every actor of the view through the
// mesh's cast tree; the receivers decode it by its type name.
func (am *actorMeshObj) cast(inst *core.Instance, typeName string, body []byte) error {
	if err := am.checkCastable(); err != nil {
		return err
	}
	if err := am.view.CastEncoded(inst, typeName, body); err != nil {
		return wrap(statusEInternal, err)
	}
	return nil
}

//export meshgo_cast
func meshgo_cast(ih, h C.uint64_t, ctype *C.char, cpayload *C.uint8_t, n C.size_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	inst, am, err := withInstance[*actorMeshObj](uint64(ih), uint64(h), kindActorMesh)
	if err != nil {
		return ret(err)
	}
	typeName, err := goString(ctype, "type_name")
	if err != nil {
		return ret(err)
	}
	if typeName == "" {
		return ret(fail(statusEInval, "libmesh: type_name is empty: actors need a registered message type"))
	}
	if err := checkSize(int(n), "payload"); err != nil {
		return ret(err)
	}
	payload, err := goBytes(cpayload, n, "payload")
	if err != nil {
		return ret(err)
	}
	if err := validMsgpack(payload, "payload"); err != nil {
		return ret(err)
	}
	if err := inst.alive(); err != nil {
		return ret(err)
	}
	return ret(am.cast(inst.inst, typeName, payload))
}

//export meshgo_call
func meshgo_call(ih, h C.uint64_t, cmethod *C.char, cpayload *C.uint8_t, n C.size_t, timeoutMS C.int64_t, out *C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	return handleOut(out, func(outOK bool) (uint64, error) {
		return callMesh(uint64(ih), uint64(h), cmethod, cpayload, n, int64(timeoutMS), outOK)
	})
}

func callMesh(ih, h uint64, cmethod *C.char, cpayload *C.uint8_t, n C.size_t, timeoutMS int64, outOK bool) (uint64, error) {
	inst, am, err := withInstance[*actorMeshObj](ih, h, kindActorMesh)
	if err != nil {
		return 0, err
	}
	if err := needOut(outOK, "vm"); err != nil {
		return 0, err
	}
	method, err := goString(cmethod, "method")
	if err != nil {
		return 0, err
	}
	if err := checkSize(int(n), "payload"); err != nil {
		return 0, err
	}
	payload, err := goBytes(cpayload, n, "payload")
	if err != nil {
		return 0, err
	}
	if len(payload) > 0 {
		if err := validMsgpack(payload, "payload"); err != nil {
			return 0, err
		}
	}
	if err := inst.alive(); err != nil {
		return 0, err
	}
	if err := am.checkCastable(); err != nil {
		return 0, err
	}
	ctx, cancel, err := waitCtx(timeoutMS)
	if err != nil {
		return 0, err
	}
	defer cancel()
	vm, err := mesh.Call(ctx, inst.inst, am.view, func(r core.PortRef[mesh.MethodReply]) any {
		return mesh.MethodCall{Method: method, Payload: payload, Reply: r}
	})
	if err != nil {
		return 0, opErr(ctx, err)
	}
	out := &valueMeshObj{extent: vm.Extent, results: make([]result, len(vm.Values))}
	var mf mesh.MeshFailure
	for r := range vm.Values {
		switch err := vm.Errs[r]; {
		case err == nil && vm.Values[r].Err != "":
			out.results[r] = result{statusERemote, []byte(vm.Values[r].Err)}
		case err == nil:
			out.results[r] = result{statusOK, vm.Values[r].Payload}
		case errors.As(err, &mf):
			out.results[r] = result{statusESupervise, []byte(mf.Error())}
		case lib.ctx.Err() != nil:
			out.results[r] = result{statusEClosed, []byte("libmesh: the library is shutting down")}
		case errors.Is(err, context.DeadlineExceeded) && timeoutMS == -1:
			out.results[r] = result{statusTimeout, []byte(fmt.Sprintf("libmesh: rank %d did not answer within %s (%s)", r, mesh.CallTimeout(), mesh.EnvCallTimeout))}
		case errors.Is(err, context.DeadlineExceeded):
			out.results[r] = result{statusTimeout, []byte(fmt.Sprintf("libmesh: rank %d did not answer within %d ms", r, timeoutMS))}
		default:
			out.results[r] = result{statusOf(err), []byte(err.Error())}
		}
	}
	return lib.handles.add(kindValueMesh, out)
}

//export meshgo_value_mesh_size
func meshgo_value_mesh_size(h C.uint64_t, out *C.int32_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	if out != nil {
		*out = 0
	}
	vm, err := get[*valueMeshObj](uint64(h), kindValueMesh)
	if err == nil {
		err = needOut(out != nil, "size")
	}
	if err != nil {
		return ret(err)
	}
	*out = C.int32_t(len(vm.results))
	return statusOK
}

//export meshgo_value_mesh_get
func meshgo_value_mesh_get(h C.uint64_t, rank C.int32_t, status *C.int32_t, out *C.mesh_buf_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	zeroBuf(out)
	if status != nil {
		*status = 0
	}
	vm, err := get[*valueMeshObj](uint64(h), kindValueMesh)
	if err == nil {
		err = needOut(status != nil && out != nil, "status or out")
	}
	if err != nil {
		return ret(err)
	}
	if rank < 0 || int(rank) >= len(vm.results) {
		return ret(fail(statusEInval, "libmesh: rank %d out of range: the value mesh has %d ranks", int32(rank), len(vm.results)))
	}
	r := vm.results[rank]
	*status = C.int32_t(r.status)
	setBuf(out, r.data)
	return statusOK
}

// ---- supervision ------------------------------------------------------------------

//export meshgo_supervise
func meshgo_supervise(ih, h, ph C.uint64_t) (rc C.int32_t) {
	defer recoverTo(&rc)
	inst, am, err := withInstance[*actorMeshObj](uint64(ih), uint64(h), kindActorMesh)
	if err != nil {
		return ret(err)
	}
	port, err := get[*portObj](uint64(ph), kindPort)
	if err != nil {
		return ret(err)
	}
	if err := inst.alive(); err != nil {
		return ret(err)
	}
	sub := am.shared.full.Subscribe(inst.inst)
	port.smu.Lock()
	port.subs = append(port.subs, sub)
	port.smu.Unlock()
	go forwardFailures(inst.inst, sub, port)
	return statusOK
}

// forwardFailures copies a mesh's failures into a C port until the
// subscription or the port closes.
func forwardFailures(inst *core.Instance, sub *core.PortReceiver[mesh.MeshFailure], port *portObj) {
	defer sub.Close()
	defer func() { _ = recover() }()
	for {
		f, err := sub.Recv(lib.ctx)
		if err != nil {
			return
		}
		body, err := msgpack.Marshal(f)
		if err != nil {
			continue
		}
		if err := inst.PostEncoded(port.id, supervisionType, body, nil); err != nil {
			return
		}
	}
}
