package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/mesh/testactor"
	"github.com/vmihailenco/msgpack/v5"
)

// Spawning an actor mesh by type name.
//
// mesh.Spawn[A] names the actor type by the Go type A (core.ActorTypeName),
// and the C ABI has only a name. Until the mesh package offers a spawn by
// name, each distinct type name spawned from this process is bound to one
// of a fixed set of otherwise unused Go types (slotActor[[N]struct{}]): the
// binding is registered with core.RegisterActor, then the name's local
// factory is put back to the library's own (foreign types registered here,
// or an error for names only spawned elsewhere). The remote procs look the
// name up in their own registries, so the placeholder type never travels.

// maxSlots bounds the distinct actor type names one process can spawn
// through the C ABI.
const maxTypeSlots = 64

// reservedPrefixes name the runtime's own types, which the C ABI neither
// spawns nor lets foreign code replace.
var reservedPrefixes = []string{"mesh.", "alloc.", "actormesh.", "capi."}

func reservedType(name string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

var errPlaceholder = errors.New("capi: placeholder actor type")

// slotActor is a placeholder type; it is never instantiated.
type slotActor[T any] struct{}

func (*slotActor[T]) Handle(*core.Context, any) error { return errPlaceholder }

type typeSlot struct {
	bind  func(name string)
	spawn func(ctx context.Context, inst *core.Instance, pm *mesh.ProcMesh, name string, params msgpack.RawMessage) (meshOps, error)
}

func makeSlot[T any]() typeSlot {
	return typeSlot{
		bind: func(name string) {
			core.RegisterActor(name, func(struct{}) (*slotActor[T], error) { return nil, errPlaceholder })
		},
		spawn: spawnAs[*slotActor[T]],
	}
}

func spawnAs[A core.Actor](ctx context.Context, inst *core.Instance, pm *mesh.ProcMesh, name string, params msgpack.RawMessage) (meshOps, error) {
	m, err := mesh.Spawn[A](ctx, inst, pm, name, params)
	if err != nil {
		return nil, err
	}
	return typedOps[A]{m}, nil
}

// goActorTypes are the Go actor types linked into the library, spawned as
// themselves. The test actor is linked in, as in the bootstrap binary, so
// that C and Python programs can test against it in their own procs too.
var goActorTypes = map[string]typeSlot{
	testactor.TypeName: {spawn: spawnAs[*testactor.TestActor]},
}

var typeSlots = struct {
	sync.Mutex
	bound map[string]typeSlot
	free  []typeSlot
}{bound: map[string]typeSlot{}, free: []typeSlot{
	makeSlot[[1]struct{}](),
	makeSlot[[2]struct{}](),
	makeSlot[[3]struct{}](),
	makeSlot[[4]struct{}](),
	makeSlot[[5]struct{}](),
	makeSlot[[6]struct{}](),
	makeSlot[[7]struct{}](),
	makeSlot[[8]struct{}](),
	makeSlot[[9]struct{}](),
	makeSlot[[10]struct{}](),
	makeSlot[[11]struct{}](),
	makeSlot[[12]struct{}](),
	makeSlot[[13]struct{}](),
	makeSlot[[14]struct{}](),
	makeSlot[[15]struct{}](),
	makeSlot[[16]struct{}](),
	makeSlot[[17]struct{}](),
	makeSlot[[18]struct{}](),
	makeSlot[[19]struct{}](),
	makeSlot[[20]struct{}](),
	makeSlot[[21]struct{}](),
	makeSlot[[22]struct{}](),
	makeSlot[[23]struct{}](),
	makeSlot[[24]struct{}](),
	makeSlot[[25]struct{}](),
	makeSlot[[26]struct{}](),
	makeSlot[[27]struct{}](),
	makeSlot[[28]struct{}](),
	makeSlot[[29]struct{}](),
	makeSlot[[30]struct{}](),
	makeSlot[[31]struct{}](),
	makeSlot[[32]struct{}](),
	makeSlot[[33]struct{}](),
	makeSlot[[34]struct{}](),
	makeSlot[[35]struct{}](),
	makeSlot[[36]struct{}](),
	makeSlot[[37]struct{}](),
	makeSlot[[38]struct{}](),
	makeSlot[[39]struct{}](),
	makeSlot[[40]struct{}](),
	makeSlot[[41]struct{}](),
	makeSlot[[42]struct{}](),
	makeSlot[[43]struct{}](),
	makeSlot[[44]struct{}](),
	makeSlot[[45]struct{}](),
	makeSlot[[46]struct{}](),
	makeSlot[[47]struct{}](),
	makeSlot[[48]struct{}](),
	makeSlot[[49]struct{}](),
	makeSlot[[50]struct{}](),
	makeSlot[[51]struct{}](),
	makeSlot[[52]struct{}](),
	makeSlot[[53]struct{}](),
	makeSlot[[54]struct{}](),
	makeSlot[[55]struct{}](),
	makeSlot[[56]struct{}](),
	makeSlot[[57]struct{}](),
	makeSlot[[58]struct{}](),
	makeSlot[[59]struct{}](),
	makeSlot[[60]struct{}](),
	makeSlot[[61]struct{}](),
	makeSlot[[62]struct{}](),
	makeSlot[[63]struct{}](),
	makeSlot[[64]struct{}](),
}}

// slotFor returns the slot bound to typeName, binding a free one if needed.
func slotFor(typeName string) (typeSlot, error) {
	if s, ok := goActorTypes[typeName]; ok {
		return s, nil
	}
	typeSlots.Lock()
	defer typeSlots.Unlock()
	if s, ok := typeSlots.bound[typeName]; ok {
		return s, nil
	}
	if len(typeSlots.free) == 0 {
		return typeSlot{}, fail(statusEInternal, "libmesh: more than %d distinct actor types spawned from this process", maxTypeSlots)
	}
	s := typeSlots.free[0]
	typeSlots.free = typeSlots.free[1:]
	s.bind(typeName)
	core.RegisterActorFactory(typeName, localFactory(typeName))
	typeSlots.bound[typeName] = s
	return s, nil
}

// localFactory builds typeName's actors in this process: foreign types
// registered here; anything else is only known to the procs elsewhere.
func localFactory(typeName string) core.ActorFactory {
	return func(params []byte) (core.Actor, error) {
		if t := lookupForeign(typeName); t != nil {
			return newForeignActor(t, params)
		}
		return nil, fmt.Errorf("%w %q in this process (it is spawned by name in other processes only)", core.ErrUnknownActorType, typeName)
	}
}

// meshOps is an actor mesh whatever its placeholder type.
type meshOps interface {
	Name() string
	Extent() alloc.Extent
	Values() []core.ActorRef
	Slice(dim string, from, to int) (meshOps, error)
	Failure(rank int) (mesh.MeshFailure, bool)
	Subscribe(inst *core.Instance) *core.PortReceiver[mesh.MeshFailure]
	Stop(ctx context.Context, inst *core.Instance) error
	Cast(inst *core.Instance, msg any) error
	Call(ctx context.Context, inst *core.Instance, method string, payload []byte) (*mesh.ValueMesh[mesh.MethodReply], error)
}

type typedOps[A core.Actor] struct{ m *mesh.ActorMesh[A] }

func (o typedOps[A]) Name() string            { return o.m.Name() }
func (o typedOps[A]) Extent() alloc.Extent    { return o.m.Extent() }
func (o typedOps[A]) Values() []core.ActorRef { return o.m.Values() }
func (o typedOps[A]) Failure(rank int) (mesh.MeshFailure, bool) {
	return o.m.Failure(rank)
}
func (o typedOps[A]) Subscribe(inst *core.Instance) *core.PortReceiver[mesh.MeshFailure] {
	return o.m.Subscribe(inst)
}
func (o typedOps[A]) Stop(ctx context.Context, inst *core.Instance) error { return o.m.Stop(ctx, inst) }
func (o typedOps[A]) Slice(dim string, from, to int) (meshOps, error) {
	s, err := o.m.Slice(dim, from, to)
	if err != nil {
		return nil, err
	}
	return typedOps[A]{s}, nil
}
func (o typedOps[A]) Call(ctx context.Context, inst *core.Instance, method string, payload []byte) (*mesh.ValueMesh[mesh.MethodReply], error) {
	return mesh.Call(ctx, inst, o.m, func(r core.PortRef[mesh.MethodReply]) any {
		return mesh.MethodCall{Method: method, Payload: payload, Reply: r}
	})
}

func (o typedOps[A]) Cast(inst *core.Instance, msg any) error { return o.m.Cast(inst, msg) }
