package codec

import (
	"reflect"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// The runtime holds messages as `any`. These entry points reach the value
// inside an interface, and box a decoded value, without copying it: a copy
// of a message with a large array would cost as much as the encoding.

// eface is the layout of an empty interface.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// AppendValue appends the encoding of v, as vmihailenco's Encoder (with
// UseCompactInts) would write it; a nil v is msgpack nil.
func AppendValue(b []byte, v any) ([]byte, error) {
	if v == nil {
		return append(b, 0xc0), nil
	}
	return Of(reflect.TypeOf(v)).AppendValue(b, v)
}

// AppendValue is the package's AppendValue for a v of c's type.
func (c *Codec) AppendValue(b []byte, v any) ([]byte, error) {
	if c.direct {
		// The value is the interface's data word itself; only this case
		// needs its address, which moves it to the heap.
		w := dataWord(v)
		return c.Append(b, unsafe.Pointer(&w))
	}
	return c.Append(b, dataWord(v))
}

// dataWord is v's data word: for most types a pointer to v's value.
func dataWord(v any) unsafe.Pointer { return (*eface)(unsafe.Pointer(&v)).data }

// Unmarshal decodes data into the zero-valued T at p. Input the plan does
// not take exactly (see Decode) is decoded by msgpack.Unmarshal instead,
// so the result and the errors are always msgpack.Unmarshal's. With
// aliasBytes, []byte values may alias data; aliased reports whether any
// does, i.e. whether data must outlive the value.
func (c *Codec) Unmarshal(data []byte, p unsafe.Pointer, aliasBytes bool) (aliased bool, err error) {
	return c.unmarshal(data, p, aliasBytes, nil)
}

func (c *Codec) unmarshal(data []byte, p unsafe.Pointer, aliasBytes bool, lender any) (aliased bool, err error) {
	aliased, err = c.decode(data, p, aliasBytes, lender)
	if err == nil {
		return aliased, nil
	}
	// The failed attempt may have filled part of the value.
	v := reflect.NewAt(c.typ, p)
	v.Elem().SetZero()
	// vmihailenco panics on a few inputs: garbage from the wire must not
	// take the process down.
	return false, guard(func() error { return msgpack.Unmarshal(data, v.Interface()) })
}

// New decodes data into a new T and returns it boxed, as Unmarshal would.
func (c *Codec) New(data []byte, aliasBytes bool) (v any, aliased bool, err error) {
	return c.newValue(data, aliasBytes, nil)
}

// NewLent is New for a data that lender owns: FastDecoders find lender in
// their msgp.Reader and may keep pointing into data by taking a share of
// it. Plain []byte values are copied. When the plan falls back to
// vmihailenco, nothing is lent, but shares taken before the fallback are
// not given back: lender must then never reuse data.
func (c *Codec) NewLent(data []byte, lender any) (v any, err error) {
	v, _, err = c.newValue(data, false, lender)
	return v, err
}

// UnmarshalLent is Unmarshal for data that lender owns, as NewLent.
func (c *Codec) UnmarshalLent(data []byte, p unsafe.Pointer, lender any) error {
	_, err := c.unmarshal(data, p, false, lender)
	return err
}

func (c *Codec) newValue(data []byte, aliasBytes bool, lender any) (v any, aliased bool, err error) {
	p := reflect.New(c.typ).UnsafePointer()
	if aliased, err = c.unmarshal(data, p, aliasBytes, lender); err != nil {
		return nil, false, err
	}
	e := (*eface)(unsafe.Pointer(&v))
	e.typ = c.itype
	if c.direct {
		e.data = *(*unsafe.Pointer)(p)
	} else {
		e.data = p // the fresh allocation becomes the interface's copy
	}
	return v, aliased, nil
}
