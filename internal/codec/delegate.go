package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter lets a vmihailenco Encoder write straight into the output.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

type encBridge struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encBridges = sync.Pool{New: func() any {
	e := &encBridge{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

func withEncoder(b []byte, fn func(*msgpack.Encoder) error) ([]byte, error) {
	e := encBridges.Get().(*encBridge)
	// Reset clears the interned-string dictionary, which would otherwise
	// leak from one message into the next.
	e.enc.Reset(&e.w)
	e.enc.UseCompactInts(true)
	e.w.b = b
	err := guard(func() error { return fn(e.enc) })
	b = e.w.b
	e.w.b = nil
	encBridges.Put(e)
	return b, err
}

// encodeDelegate encodes one sub-value the way vmihailenco encodes a struct
// field of that type.
func encodeDelegate(b []byte, t reflect.Type, p unsafe.Pointer) ([]byte, error) {
	b, err := withEncoder(b, func(enc *msgpack.Encoder) error {
		return enc.EncodeValue(reflect.NewAt(t, p).Elem())
	})
	if err != nil {
		return b, fmt.Errorf("codec: %v: %w", t, err)
	}
	return b, nil
}

// encodeTop encodes a whole message exactly as the runtime's
// Encoder.Encode(value) would, including its top-level special cases.
func encodeTop(b []byte, t reflect.Type, p unsafe.Pointer) ([]byte, error) {
	b, err := withEncoder(b, func(enc *msgpack.Encoder) error {
		return enc.Encode(reflect.NewAt(t, p).Elem().Interface())
	})
	if err != nil {
		return b, fmt.Errorf("codec: %v: %w", t, err)
	}
	return b, nil
}

type decBridge struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decBridges = sync.Pool{New: func() any {
	d := &decBridge{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}}

func withDecoder(data []byte, fn func(*msgpack.Decoder) error) error {
	d := decBridges.Get().(*decBridge)
	d.r.Reset(data)
	d.dec.Reset(&d.r)
	// As msgpack.Unmarshal does.
	d.dec.UsePreallocateValues(true)
	err := guard(func() error { return fn(d.dec) })
	if err == nil && d.r.Len() != 0 {
		err = fmt.Errorf("decoder left %d of %d bytes unread", d.r.Len(), len(data))
	}
	d.r.Reset(nil)
	decBridges.Put(d)
	return err
}

// decodeDelegate decodes the next value as vmihailenco decodes a struct
// field of type t.
func decodeDelegate(r *msgp.Reader, t reflect.Type, p unsafe.Pointer) error {
	start := r.Off
	if err := skip(r); err != nil {
		return fmt.Errorf("codec: %v: %w", t, err)
	}
	err := withDecoder(r.B[start:r.Off], func(dec *msgpack.Decoder) error {
		return dec.DecodeValue(reflect.NewAt(t, p).Elem())
	})
	if err != nil {
		return fmt.Errorf("codec: %v: %w", t, err)
	}
	return nil
}

// decodeTop is msgpack.Unmarshal(data, (*T)(p)) plus the exactly-one-value
// rule.
func decodeTop(data []byte, t reflect.Type, p unsafe.Pointer) error {
	r := msgp.Reader{B: data}
	if err := skip(&r); err != nil {
		return fmt.Errorf("codec: %v: %w", t, err)
	}
	if r.Off != len(data) {
		return fmt.Errorf("codec: %v: %d trailing bytes", t, len(data)-r.Off)
	}
	err := withDecoder(data, func(dec *msgpack.Decoder) error {
		return dec.Decode(reflect.NewAt(t, p).Interface())
	})
	if err != nil {
		return fmt.Errorf("codec: %v: %w", t, err)
	}
	return nil
}

// guard turns a panic inside vmihailenco (it has a few, e.g. for uintptr
// values reached through interfaces) into an error.
func guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("msgpack panicked: %v", v)
		}
	}()
	return fn()
}
