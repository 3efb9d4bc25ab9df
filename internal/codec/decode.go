package codec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/actormesh/actormesh/transport"
)

// maxDepth bounds recursion through recursive types; vmihailenco has no
// bound, so refusing deeper input only costs the caller a slow retry.
const maxDepth = 1000

type decoder struct {
	r       msgp.Reader
	alias   bool
	aliased bool // some decoded value points into r.B
	depth   int
}

var errDepth = errors.New("msgpack: nesting too deep")

func (d *decoder) peekNil() bool {
	return d.r.Off < len(d.r.B) && d.r.B[d.r.Off] == 0xc0
}

// The decoders below target zero values only (Decode's contract, and
// struct decoding refuses repeated keys), which is what lets them skip
// vmihailenco's merge-into-existing-value paths.

func (n *node) decode(d *decoder, p unsafe.Pointer) error {
	switch n.op {
	case opBool:
		c, err := d.r.Byte()
		if err != nil {
			return err
		}
		switch c {
		case 0xc0, 0xc2:
		case 0xc3:
			*(*bool)(p) = true
		default:
			return fmt.Errorf("msgpack: invalid code=%x decoding bool", c)
		}
		return nil
	case opInt, opInt8, opInt16, opInt32, opInt64:
		v, err := readInt(&d.r)
		if err != nil {
			return err
		}
		// Truncation, as reflect.Value.SetInt does for vmihailenco.
		switch n.op {
		case opInt:
			*(*int)(p) = int(v)
		case opInt8:
			*(*int8)(p) = int8(v)
		case opInt16:
			*(*int16)(p) = int16(v)
		case opInt32:
			*(*int32)(p) = int32(v)
		default:
			*(*int64)(p) = v
		}
		return nil
	case opUint, opUint8, opUint16, opUint32, opUint64:
		v, err := readUint(&d.r)
		if err != nil {
			return err
		}
		switch n.op {
		case opUint:
			*(*uint)(p) = uint(v)
		case opUint8:
			*(*uint8)(p) = uint8(v)
		case opUint16:
			*(*uint16)(p) = uint16(v)
		case opUint32:
			*(*uint32)(p) = uint32(v)
		default:
			*(*uint64)(p) = v
		}
		return nil
	case opFloat32:
		if d.r.Off < len(d.r.B) && d.r.B[d.r.Off] == 0xca {
			d.r.Off++
			u, err := beLen(&d.r, 4)
			*(*float32)(p) = math.Float32frombits(uint32(u))
			return err
		}
		v, err := readInt(&d.r)
		*(*float32)(p) = float32(v)
		return err
	case opFloat64:
		if d.r.Off < len(d.r.B) {
			switch d.r.B[d.r.Off] {
			case 0xca:
				d.r.Off++
				u, err := beLen(&d.r, 4)
				*(*float64)(p) = float64(math.Float32frombits(uint32(u)))
				return err
			case 0xcb:
				d.r.Off++
				s, err := d.r.Need(8)
				if err != nil {
					return err
				}
				*(*float64)(p) = math.Float64frombits(be64(s))
				return nil
			}
		}
		v, err := readInt(&d.r)
		*(*float64)(p) = float64(v)
		return err
	case opString:
		s, isNil, err := readBytes(&d.r)
		if err != nil || isNil || len(s) == 0 {
			return err
		}
		*(*string)(p) = string(s)
		return nil
	case opBytes:
		s, isNil, err := readBytes(&d.r)
		if err != nil || isNil {
			return err
		}
		// vmihailenco yields a non-nil empty slice for a zero length.
		if d.alias && len(s) > 0 {
			*(*[]byte)(p) = s[:len(s):len(s)]
			d.aliased = true
		} else if len(s) == 0 {
			*(*[]byte)(p) = []byte{}
		} else {
			*(*[]byte)(p) = transport.CopyOwned(s)
		}
		return nil
	case opByteArray:
		s, isNil, err := readBytes(&d.r)
		if err != nil || isNil {
			return err
		}
		if len(s) > n.n {
			return fmt.Errorf("%v len is %d, but msgpack has %d elements", n.typ, n.n, len(s))
		}
		copy(unsafe.Slice((*byte)(p), n.n), s)
		return nil
	case opSlice:
		return n.decodeSlice(d, p)
	case opArray:
		cnt, err := readArrayLen(&d.r)
		if err != nil || cnt < 0 {
			return err
		}
		if cnt > n.n {
			return fmt.Errorf("%v len is %d, but msgpack has %d elements", n.typ, n.n, cnt)
		}
		return n.decodeElems(d, p, cnt)
	case opPtr:
		if d.peekNil() {
			d.r.Off++
			return nil
		}
		q := reflect.New(n.elem.typ).UnsafePointer()
		*(*unsafe.Pointer)(p) = q
		return n.elem.decodeNested(d, q)
	case opStruct:
		return n.decodeStruct(d, p)
	case opMap:
		return n.decodeMap(d, p)
	case opExt:
		// vmihailenco leaves custom-decoded values zero on nil without
		// asking them.
		if d.peekNil() {
			d.r.Off++
			return nil
		}
		var fd FastDecoder
		*(*iface)(unsafe.Pointer(&fd)) = iface{n.decTab, p}
		next, err := fd.DecodeMsgpackAt(d.r)
		if err != nil {
			return fmt.Errorf("codec: %v: %w", n.typ, err)
		}
		d.r.Off = next
		return nil
	case opDelegate:
		return decodeDelegate(&d.r, n.typ, p)
	}
	return n.unsupported()
}

func (n *node) decodeNested(d *decoder, p unsafe.Pointer) error {
	d.depth++
	if d.depth > maxDepth {
		return errDepth
	}
	err := n.decode(d, p)
	d.depth--
	return err
}

func (n *node) decodeSlice(d *decoder, p unsafe.Pointer) error {
	cnt, err := readArrayLen(&d.r)
	if err != nil || cnt < 0 {
		return err
	}
	if cnt > len(d.r.B)-d.r.Off {
		return errTooMany
	}
	s := reflect.MakeSlice(n.typ, cnt, cnt)
	*(*sliceHeader)(p) = sliceHeader{s.UnsafePointer(), cnt, cnt}
	return n.decodeElems(d, (*sliceHeader)(p).data, cnt)
}

func (n *node) decodeElems(d *decoder, p unsafe.Pointer, cnt int) error {
	for i := 0; i < cnt; i++ {
		if err := n.elem.decodeNested(d, unsafe.Add(p, uintptr(i)*n.size)); err != nil {
			return fmt.Errorf("%v[%d]: %w", n.typ, i, err)
		}
	}
	return nil
}

// mapHeader reads the rest of a map header that starts with c; isMap is
// false when c starts something else.
func mapHeader(r *msgp.Reader, c byte) (cnt int, isMap bool, err error) {
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), true, nil
	case c == 0xde || c == 0xdf:
		cnt, err = beLen(r, 2<<(c-0xde))
		return cnt, true, err
	}
	return 0, false, nil
}

func (n *node) decodeStruct(d *decoder, p unsafe.Pointer) error {
	c, err := d.r.Byte()
	if err != nil {
		return err
	}
	if c == 0xc0 {
		return nil
	}
	cnt, isMap, err := mapHeader(&d.r, c)
	switch {
	case err != nil:
		return err
	case isMap:
	case c&0xf0 == 0x90:
		return n.decodeStructArray(d, p, int(c&0x0f))
	case c == 0xdc || c == 0xdd:
		if cnt, err = beLen(&d.r, 2<<(c-0xdc)); err != nil {
			return err
		}
		return n.decodeStructArray(d, p, cnt)
	default:
		return fmt.Errorf("codec: %v: want map or array, got code %x", n.typ, c)
	}
	// A repeated key would make vmihailenco merge into the first value;
	// refusing it keeps every target zero.
	var seen uint64
	var seenBig []bool
	if len(n.fields) > 64 {
		seenBig = make([]bool, len(n.fields))
	}
	for i := 0; i < cnt; i++ {
		key, _, err := readBytes(&d.r)
		if err != nil {
			return fmt.Errorf("codec: %v: key: %w", n.typ, err)
		}
		idx, ok := n.lookup(key)
		if !ok {
			if err := skip(&d.r); err != nil {
				return err
			}
			continue
		}
		if idx == embeddedKey {
			return fmt.Errorf("codec: %v: key %q names an inlined embedded struct", n.typ, key)
		}
		if seenBig != nil {
			if seenBig[idx] {
				return fmt.Errorf("codec: %v: repeated key %q", n.typ, key)
			}
			seenBig[idx] = true
		} else {
			if seen&(1<<idx) != 0 {
				return fmt.Errorf("codec: %v: repeated key %q", n.typ, key)
			}
			seen |= 1 << idx
		}
		if err := n.decodeField(d, p, &n.fields[idx]); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) decodeStructArray(d *decoder, p unsafe.Pointer, cnt int) error {
	if cnt == 0 {
		return nil
	}
	if cnt != len(n.fields) {
		return fmt.Errorf("codec: %v: array of %d for %d fields", n.typ, cnt, len(n.fields))
	}
	for i := range n.fields {
		if err := n.decodeField(d, p, &n.fields[i]); err != nil {
			return err
		}
	}
	return nil
}

func (n *node) decodeField(d *decoder, p unsafe.Pointer, f *sfield) error {
	fp, err := f.addrAlloc(p)
	if err != nil {
		return fmt.Errorf("%v: %w", n.typ, err)
	}
	if err := f.node.decodeNested(d, fp); err != nil {
		return fmt.Errorf("%v.%s: %w", n.typ, f.name, err)
	}
	return nil
}

// decodeMap fills the map through reflection, with one reused key and
// value buffer, since Go maps cannot be written through a plan.
func (n *node) decodeMap(d *decoder, p unsafe.Pointer) error {
	c, err := d.r.Byte()
	if err != nil {
		return err
	}
	if c == 0xc0 {
		return nil
	}
	cnt, isMap, err := mapHeader(&d.r, c)
	if err != nil {
		return err
	}
	if !isMap {
		// Includes vmihailenco's ext-wrapped maps, which it alone reads.
		return fmt.Errorf("codec: %v: want map, got code %x", n.typ, c)
	}
	if cnt > (len(d.r.B)-d.r.Off)/2 {
		return errTooMany
	}
	m := reflect.NewAt(n.typ, p).Elem()
	m.Set(reflect.MakeMapWithSize(n.typ, cnt))
	if cnt == 0 {
		return nil
	}
	k := reflect.New(n.typ.Key()).Elem()
	v := reflect.New(n.typ.Elem()).Elem()
	kp := k.Addr().UnsafePointer()
	vp := v.Addr().UnsafePointer()
	for i := 0; i < cnt; i++ {
		if i > 0 {
			k.SetZero()
			v.SetZero()
		}
		if err := n.key.decodeNested(d, kp); err != nil {
			return fmt.Errorf("%v key: %w", n.typ, err)
		}
		if err := n.elem.decodeNested(d, vp); err != nil {
			return fmt.Errorf("%v value: %w", n.typ, err)
		}
		m.SetMapIndex(k, v)
	}
	return nil
}

func be64(s []byte) uint64 {
	var u uint64
	for _, c := range s {
		u = u<<8 | uint64(c)
	}
	return u
}

// readInt is vmihailenco's Decoder.int: nil reads as 0 and unsigned 64-bit
// values wrap.
func readInt(r *msgp.Reader) (int64, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	if c <= 0x7f || c >= 0xe0 {
		return int64(int8(c)), nil
	}
	var size int
	switch c {
	case 0xc0:
		return 0, nil
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return 0, fmt.Errorf("msgpack: invalid code=%x decoding int64", c)
	}
	s, err := r.Need(size)
	if err != nil {
		return 0, err
	}
	u := be64(s)
	if c >= 0xd0 { // signed: sign-extend
		shift := 64 - 8*size
		return int64(u<<shift) >> shift, nil
	}
	return int64(u), nil
}

// readUint is vmihailenco's Decoder.uint: signed values are sign-extended
// and reinterpreted, never refused.
func readUint(r *msgp.Reader) (uint64, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	if c <= 0x7f || c >= 0xe0 {
		return uint64(int64(int8(c))), nil
	}
	if c < 0xcc || c > 0xd3 {
		if c == 0xc0 {
			return 0, nil
		}
		return 0, fmt.Errorf("msgpack: invalid code=%x decoding uint64", c)
	}
	v, err := readInt(&msgp.Reader{B: r.B, Off: r.Off - 1})
	if err != nil {
		return 0, err
	}
	r.Off += 1 << ((c - 0xcc) & 3)
	return uint64(v), nil
}

// readBytes reads a str, bin or nil, which vmihailenco accepts
// interchangeably for strings, []byte and [N]byte.
func readBytes(r *msgp.Reader) (s []byte, isNil bool, err error) {
	c, err := r.Byte()
	if err != nil {
		return nil, false, err
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xc0:
		return nil, true, nil
	case c == 0xd9 || c == 0xc4:
		n, err = beLen(r, 1)
	case c == 0xda || c == 0xc5:
		n, err = beLen(r, 2)
	case c == 0xdb || c == 0xc6:
		n, err = beLen(r, 4)
	default:
		return nil, false, fmt.Errorf("msgpack: invalid code=%x decoding string/bytes length", c)
	}
	if err != nil {
		return nil, false, err
	}
	s, err = r.Need(n)
	return s, false, err
}

// readArrayLen returns -1 for nil.
func readArrayLen(r *msgp.Reader) (int, error) {
	c, err := r.Byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c == 0xc0:
		return -1, nil
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc || c == 0xdd:
		return beLen(r, 2<<(c-0xdc))
	}
	return 0, fmt.Errorf("msgpack: invalid code=%x decoding array length", c)
}
