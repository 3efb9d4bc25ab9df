package main

import (
	"fmt"
	"strings"
	"sync"
)

// kind is the kind of object a handle names; it lives in the handle's top
// byte, so a handle of one kind can never be taken for another.
type kind uint8

const (
	kindProc kind = 1 + iota
	kindInstance
	kindPort
	kindPoller
	kindAllocator
	kindHostMesh
	kindProcMesh
	kindActorMesh
	kindValueMesh
)

var kindNames = [...]string{"", "proc", "instance", "port", "poller", "allocator", "host mesh", "proc mesh", "actor mesh", "value mesh"}

// a gives the kind with its article ("a port", "an instance").
func (k kind) a() string {
	s := k.String()
	if strings.IndexByte("aeiou", s[0]) >= 0 {
		return "an " + s
	}
	return "a " + s
}

func (k kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// A handle is kind(8 bits) | generation(24 bits) | slot index(32 bits).
// Freeing a slot bumps its generation, so stale handles are refused.
const (
	genBits  = 24
	genMask  = 1<<genBits - 1
	idxMask  = 1<<32 - 1
	maxSlots = 1 << 31
)

func makeHandle(k kind, gen uint32, idx uint32) uint64 {
	return uint64(k)<<56 | uint64(gen&genMask)<<32 | uint64(idx)
}

type slot struct {
	gen  uint32
	kind kind // 0 when free
	obj  any
}

// registry maps handles to objects.
type registry struct {
	mu    sync.RWMutex
	slots []slot
	free  []uint32
}

func (r *registry) add(k kind, obj any) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var idx uint32
	if n := len(r.free); n > 0 {
		idx = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		if len(r.slots) >= maxSlots {
			return 0, fail(statusEInternal, "libmesh: too many live handles (%d)", len(r.slots))
		}
		idx = uint32(len(r.slots))
		r.slots = append(r.slots, slot{gen: 1})
	}
	s := &r.slots[idx]
	s.kind, s.obj = k, obj
	return makeHandle(k, s.gen, idx), nil
}

// lookup returns the object of handle h, which must be of kind want.
func (r *registry) lookup(h uint64, want kind) (any, error) {
	k, gen, idx := kind(h>>56), uint32(h>>32)&genMask, uint32(h&idxMask)
	if h == 0 {
		return nil, fail(statusEBadHandle, "libmesh: %s handle is 0 (no object)", want)
	}
	r.mu.RLock()
	var s slot
	ok := int(idx) < len(r.slots)
	if ok {
		s = r.slots[idx]
	}
	r.mu.RUnlock()
	switch {
	case !ok || k == 0 || int(k) >= len(kindNames):
		return nil, fail(statusEBadHandle, "libmesh: 0x%016x is not a handle (want %s)", h, want.a())
	case s.kind == 0 || s.gen&genMask != gen:
		return nil, fail(statusEBadHandle, "libmesh: %s handle 0x%016x is stale (freed)", k, h)
	case s.kind != k:
		return nil, fail(statusEBadHandle, "libmesh: 0x%016x is not a handle (want %s)", h, want.a())
	case k != want:
		return nil, fail(statusEBadHandle, "libmesh: handle 0x%016x is %s, not %s", h, k.a(), want.a())
	}
	return s.obj, nil
}

// remove frees handle h and returns its object.
func (r *registry) remove(h uint64) (any, bool) {
	k, gen, idx := kind(h>>56), uint32(h>>32)&genMask, uint32(h&idxMask)
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(idx) >= len(r.slots) {
		return nil, false
	}
	s := &r.slots[idx]
	if s.kind == 0 || s.kind != k || s.gen&genMask != gen {
		return nil, false
	}
	obj := s.obj
	r.releaseLocked(idx)
	return obj, true
}

// releaseLocked frees slot idx for a later handle of a new generation. A
// slot whose generations are used up is retired instead: its next handle
// would be one freed 2^24 generations ago, and a stale copy of that must
// stay refused.
func (r *registry) releaseLocked(idx uint32) {
	s := &r.slots[idx]
	s.kind, s.obj = 0, nil
	if s.gen == genMask {
		return
	}
	s.gen++
	r.free = append(r.free, idx)
}

// drain frees every handle and returns the objects.
func (r *registry) drain() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var objs []any
	for i := range r.slots {
		s := &r.slots[i]
		if s.kind == 0 {
			continue
		}
		objs = append(objs, s.obj)
		r.releaseLocked(uint32(i))
	}
	return objs
}

// get looks up h as a T of kind k.
func get[T any](h uint64, k kind) (T, error) {
	var zero T
	if err := lib.ready(); err != nil {
		return zero, err
	}
	obj, err := lib.handles.lookup(h, k)
	if err != nil {
		return zero, err
	}
	return obj.(T), nil
}

// withInstance is get for the two handles most calls take: the calling
// instance ih, and the object h of kind k that the call is about.
func withInstance[T any](ih, h uint64, k kind) (*instObj, T, error) {
	var zero T
	inst, err := get[*instObj](ih, kindInstance)
	if err != nil {
		return nil, zero, err
	}
	o, err := get[T](h, k)
	if err != nil {
		return nil, zero, err
	}
	return inst, o, nil
}
