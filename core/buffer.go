package core

import (
	"bytes"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/actormesh/actormesh/transport"
)

// Buffer is a byte payload for large messages. A []byte field is copied
// out of the received frame into fresh memory, which for megabytes costs
// more than the transfer: the copy, page faults, and a garbage collection
// every few messages. A Buffer field in a message from another process,
// to an actor or to a port, instead points into the frame the transport
// read, and Release hands that frame back to the transport for the next
// message. (Inside maps and interfaces, which vmihailenco decodes, and in
// frames too small for the transport's pool, a Buffer is a copy.) A Buffer that is
// never released is collected like any other value.
//
// On the wire a Buffer is a msgpack bin, as a []byte is, so the two are
// interchangeable between sender and receiver.
//
// Release once nobody uses the bytes any more. A message sent to an actor
// in the same proc is not copied, so a Buffer passed on that way goes with
// its loan: release it on one side only. Copies of a Buffer value share
// the loan, and releasing more than one of them is harmless.
type Buffer struct {
	b    []byte
	loan *loan
}

// NewBuffer returns a Buffer holding b, which it does not copy: b must not
// change until the message carrying it has been sent.
func NewBuffer(b []byte) Buffer { return Buffer{b: b} }

// Bytes returns the payload. After Release it returns nil, but a slice
// obtained before stays pointing at memory the transport may reuse.
func (b Buffer) Bytes() []byte { return b.b }

// Len is len(b.Bytes()).
func (b Buffer) Len() int { return len(b.b) }

// Release gives the memory back to the transport, if it came from there,
// and empties b.
func (b *Buffer) Release() {
	l := b.loan
	b.b, b.loan = nil, nil
	if l != nil && l.returned.CompareAndSwap(false, true) {
		l.lease.drop()
	}
}

// EncodeMsgpack writes b as a bin (nil for an empty Buffer), as
// vmihailenco writes a []byte.
func (b Buffer) EncodeMsgpack(enc *msgpack.Encoder) error { return enc.EncodeBytes(b.b) }

// DecodeMsgpack copies: vmihailenco's decoder has no frame to lend.
func (b *Buffer) DecodeMsgpack(dec *msgpack.Decoder) error {
	s, err := dec.DecodeBytes()
	b.b, b.loan = s, nil
	return err
}

// AppendMsgpack is EncodeMsgpack for internal/codec.
func (b Buffer) AppendMsgpack(out []byte) ([]byte, error) {
	if b.b == nil {
		return append(out, 0xc0), nil
	}
	return msgp.AppendBin(out, b.b), nil
}

// DecodeMsgpackAt is DecodeMsgpack for internal/codec (see
// codec.FastDecoder), which borrows from the frame when the reader's
// lender is a frame lease. Input other than a bin (a str, which
// vmihailenco also takes) fails here and is decoded again by
// DecodeMsgpack.
func (b *Buffer) DecodeMsgpackAt(r msgp.Reader) (int, error) {
	s, err := r.Bin()
	if err != nil {
		return r.Off, err
	}
	switch lease, _ := r.Lender.(*frameLease); {
	case lease == nil:
		b.b, b.loan = bytes.Clone(s), nil
	case lease == unpooledFrame:
		b.b, b.loan = s[:len(s):len(s)], nil
	default:
		lease.refs.Add(1)
		b.b, b.loan = s[:len(s):len(s)], &loan{lease: lease}
	}
	return r.Off, nil
}

// loan is one Buffer's share of a frame; copies of the Buffer share it, so
// that only the first Release counts.
type loan struct {
	lease    *frameLease
	returned atomic.Bool
}

// frameLease owns a received frame while Buffers point into it: one
// reference for the decoder, one per Buffer. The last drop recycles it.
type frameLease struct {
	frame []byte
	refs  atomic.Int32
}

// unpooledFrame lends frames the transport does not pool: a Buffer may
// point into one without a loan, as a []byte may, since the frame is
// nobody else's.
var unpooledFrame = new(frameLease)

// newFrameLease returns a lease on frame holding the decoder's reference.
func newFrameLease(frame []byte) *frameLease {
	l := &frameLease{frame: frame}
	l.refs.Store(1)
	return l
}

func (l *frameLease) drop() {
	if l.refs.Add(-1) == 0 {
		transport.ReleaseBuffer(l.frame)
		l.frame = nil
	}
}

var bufferType = reflect.TypeFor[Buffer]()

// holdsBufferCache remembers holdsBuffer for the types ports decode.
var holdsBufferCache sync.Map // reflect.Type → bool

func typeHoldsBuffer(t reflect.Type) bool {
	if v, ok := holdsBufferCache.Load(t); ok {
		return v.(bool)
	}
	h := holdsBuffer(t)
	holdsBufferCache.Store(t, h)
	return h
}

// holdsBuffer reports whether values of t can contain a Buffer the codec's
// plan decodes itself (maps and interfaces go through vmihailenco, which
// copies).
func holdsBuffer(t reflect.Type) bool {
	return holdsBufferSeen(t, map[reflect.Type]bool{})
}

func holdsBufferSeen(t reflect.Type, seen map[reflect.Type]bool) bool {
	if t == bufferType {
		return true
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsBufferSeen(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() || f.Anonymous {
				if holdsBufferSeen(f.Type, seen) {
					return true
				}
			}
		}
	}
	return false
}
