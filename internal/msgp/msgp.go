// Package msgp writes and reads the small subset of msgpack that the
// runtime's hand-coded wire forms use (the core's envelope, the mesh's
// cast). They are hand-coded because every remote message pays for them;
// user messages go through the reflection-based codec instead.
//
// Readers check every bound, so arbitrary input yields an error, never a
// panic.
package msgp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort is returned for input that ends inside a value.
var ErrShort = errors.New("msgpack: truncated input")

// AppendArrayLen appends an array header.
func AppendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendMapLen appends a map header.
func AppendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}

// AppendUint appends an unsigned integer in its shortest form.
func AppendUint(b []byte, u uint64) []byte {
	switch {
	case u < 128:
		return append(b, byte(u))
	case u <= math.MaxUint8:
		return append(b, 0xcc, byte(u))
	case u <= math.MaxUint16:
		return append(b, 0xcd, byte(u>>8), byte(u))
	case u <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(u))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
}

// AppendInt appends a signed integer in a short form.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v < 128:
		return append(b, byte(v))
	case v < 0 && v >= -32:
		return append(b, byte(int8(v)))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendStrHeader appends the header of a string of n bytes.
func AppendStrHeader(b []byte, n int) []byte {
	switch {
	case n < 32:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

// AppendStr appends a string.
func AppendStr(b []byte, s string) []byte {
	return append(AppendStrHeader(b, len(s)), s...)
}

// AppendBinHeader appends the header of a binary of n bytes.
func AppendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
}

// AppendBin appends a binary.
func AppendBin(b []byte, p []byte) []byte {
	return append(AppendBinHeader(b, len(p)), p...)
}

// Reader reads values from B, starting at Off.
type Reader struct {
	B   []byte
	Off int
	// Lender, when set, lets decoders keep values pointing into B: it is
	// whatever owns B, for them to take a share of.
	Lender any
}

// Need returns the next n bytes.
func (r *Reader) Need(n int) ([]byte, error) {
	if n < 0 || len(r.B)-r.Off < n {
		return nil, ErrShort
	}
	s := r.B[r.Off : r.Off+n]
	r.Off += n
	return s, nil
}

// Byte returns the next byte.
func (r *Reader) Byte() (byte, error) {
	s, err := r.Need(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (r *Reader) be(n int) (uint64, error) {
	s, err := r.Need(n)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range s {
		u = u<<8 | uint64(c)
	}
	return u, nil
}

// ArrayLen reads an array header.
func (r *Reader) ArrayLen() (int, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		u, err := r.be(2)
		return int(u), err
	case c == 0xdd:
		u, err := r.be(4)
		return int(u), err
	}
	return 0, fmt.Errorf("msgpack: want array, got byte 0x%02x", c)
}

// MapLen reads a map header.
func (r *Reader) MapLen() (int, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		u, err := r.be(2)
		return int(u), err
	case c == 0xdf:
		u, err := r.be(4)
		return int(u), err
	}
	return 0, fmt.Errorf("msgpack: want map, got byte 0x%02x", c)
}

// Uint reads an unsigned integer.
func (r *Reader) Uint() (uint64, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return uint64(c), nil
	case c >= 0xcc && c <= 0xcf:
		return r.be(1 << (c - 0xcc))
	}
	return 0, fmt.Errorf("msgpack: want unsigned integer, got byte 0x%02x", c)
}

// Int reads a signed or unsigned integer that fits an int64.
func (r *Reader) Int() (int64, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		u, err := r.be(1 << (c - 0xcc))
		if u > math.MaxInt64 {
			return 0, errors.New("msgpack: integer overflows int64")
		}
		return int64(u), err
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		u, err := r.be(n)
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, err
	}
	return 0, fmt.Errorf("msgpack: want integer, got byte 0x%02x", c)
}

// StrBytes reads a string, aliasing the input.
func (r *Reader) StrBytes() ([]byte, error) {
	c, err := r.Byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = r.be(1)
	case c == 0xda:
		n, err = r.be(2)
	case c == 0xdb:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("msgpack: want string, got byte 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.Need(int(n))
}

// Str reads a string.
func (r *Reader) Str() (string, error) {
	s, err := r.StrBytes()
	return string(s), err
}

// Bin reads a binary, aliasing the input.
func (r *Reader) Bin() ([]byte, error) {
	c, err := r.Byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case 0xc4:
		n, err = r.be(1)
	case 0xc5:
		n, err = r.be(2)
	case 0xc6:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("msgpack: want binary, got byte 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.Need(int(n))
}
