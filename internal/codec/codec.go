// Package codec encodes and decodes user messages in exactly the msgpack
// form github.com/vmihailenco/msgpack/v5 uses (with UseCompactInts), but
// through a per-type plan compiled once by reflection and then walked with
// unsafe pointers, so encoding and decoding cost no reflection per value.
//
// Whatever the plan cannot reproduce exactly (interfaces, custom
// marshalers, time.Time, intern tags, ...) is handed to vmihailenco for that
// sub-value only, so every type works and the common shapes are fast.
package codec

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
)

// Appender is implemented (on *T) by types that encode themselves without
// the vmihailenco Encoder; the bytes must equal what their EncodeMsgpack
// would write.
type Appender interface {
	AppendMsgpack(b []byte) ([]byte, error)
}

// FastDecoder is the decoding half of Appender: it reads exactly one value
// starting at r.Off and returns the offset just past it. The reader comes
// by value because the call is through an interface: a pointer would make
// every such decode allocate the reader.
type FastDecoder interface {
	DecodeMsgpackAt(r msgp.Reader) (next int, err error)
}

// Codec encodes and decodes values of one type.
type Codec struct {
	typ  reflect.Type
	root *node
	// direct and itype let values be boxed and unboxed without a copy
	// (see value.go): whether an interface holds a T in its data word,
	// and the type word of an interface holding a T.
	direct bool
	itype  unsafe.Pointer
	// whole is set when the type must go to vmihailenco as one piece: its
	// encoding carries state across sub-values (interned strings), or a
	// plan for it would not match vmihailenco.
	whole bool
}

// The cache is a copy-on-write snapshot so that lookups on the hot path are
// one atomic load and a map read, with no locking.
var (
	cache   atomic.Pointer[map[reflect.Type]*Codec]
	buildMu sync.Mutex
)

// Of returns the codec for t, building and caching it on first use.
func Of(t reflect.Type) *Codec {
	if m := cache.Load(); m != nil {
		if c, ok := (*m)[t]; ok {
			return c
		}
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	old := cache.Load()
	if old != nil {
		if c, ok := (*old)[t]; ok {
			return c
		}
	}
	c := build(t)
	next := make(map[reflect.Type]*Codec, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[t] = c
	cache.Store(&next)
	return c
}

// Type returns the type c was built for.
func (c *Codec) Type() reflect.Type { return c.typ }

// Append appends the msgpack encoding of the T at p to b.
func (c *Codec) Append(b []byte, p unsafe.Pointer) ([]byte, error) {
	if c.whole || c.root.op == opDelegate {
		return encodeTop(b, c.typ, p)
	}
	return c.root.encode(b, p)
}

// Decode decodes data, which must hold exactly one value, into the
// zero-valued T at p. With aliasBytes, decoded []byte values may alias data.
func (c *Codec) Decode(data []byte, p unsafe.Pointer, aliasBytes bool) error {
	if c.whole || c.root.op == opDelegate {
		return decodeTop(data, c.typ, p)
	}
	_, err := c.decode(data, p, aliasBytes, nil)
	return err
}

// decode is Decode that also reports whether the value aliases data.
func (c *Codec) decode(data []byte, p unsafe.Pointer, aliasBytes bool, lender any) (aliased bool, err error) {
	if c.whole || c.root.op == opDelegate {
		return false, decodeTop(data, c.typ, p)
	}
	d := decoder{r: msgp.Reader{B: data, Lender: lender}, alias: aliasBytes}
	if err := c.root.decode(&d, p); err != nil {
		return false, err
	}
	if d.r.Off != len(data) {
		return false, fmt.Errorf("codec: %v: %d trailing bytes", c.typ, len(data)-d.r.Off)
	}
	return d.aliased, nil
}

// DirectIface reports whether values of t are stored directly in an
// interface's data word rather than behind a pointer to a copy.
func DirectIface(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Ptr, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() == 1 && DirectIface(t.Elem())
	case reflect.Struct:
		return t.NumField() == 1 && DirectIface(t.Field(0).Type)
	}
	return false
}
