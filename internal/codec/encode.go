package codec

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
)

type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

func (n *node) encode(b []byte, p unsafe.Pointer) ([]byte, error) {
	switch n.op {
	case opBool:
		if *(*bool)(p) {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case opInt:
		return appendInt(b, int64(*(*int)(p))), nil
	case opInt8:
		return appendInt(b, int64(*(*int8)(p))), nil
	case opInt16:
		return appendInt(b, int64(*(*int16)(p))), nil
	case opInt32:
		return appendInt(b, int64(*(*int32)(p))), nil
	case opInt64:
		return appendInt(b, *(*int64)(p)), nil
	case opUint:
		return msgp.AppendUint(b, uint64(*(*uint)(p))), nil
	case opUint8:
		return msgp.AppendUint(b, uint64(*(*uint8)(p))), nil
	case opUint16:
		return msgp.AppendUint(b, uint64(*(*uint16)(p))), nil
	case opUint32:
		return msgp.AppendUint(b, uint64(*(*uint32)(p))), nil
	case opUint64:
		return msgp.AppendUint(b, *(*uint64)(p)), nil
	case opFloat32:
		return appendFloat32(b, *(*float32)(p)), nil
	case opFloat64:
		return appendFloat64(b, *(*float64)(p)), nil
	case opString:
		return msgp.AppendStr(b, *(*string)(p)), nil
	case opBytes:
		s := *(*[]byte)(p)
		if s == nil {
			return append(b, 0xc0), nil
		}
		return append(msgp.AppendBinHeader(b, len(s)), s...), nil
	case opByteArray:
		return append(msgp.AppendBinHeader(b, n.n), unsafe.Slice((*byte)(p), n.n)...), nil
	case opSlice:
		h := (*sliceHeader)(p)
		if h.data == nil {
			return append(b, 0xc0), nil
		}
		return n.encodeElems(msgp.AppendArrayLen(b, h.len), h.data, h.len)
	case opArray:
		return n.encodeElems(msgp.AppendArrayLen(b, n.n), p, n.n)
	case opPtr:
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return append(b, 0xc0), nil
		}
		return n.elem.encode(b, q)
	case opStruct:
		return n.encodeStruct(b, p)
	case opMap:
		return n.encodeMap(b, p)
	case opExt:
		var a Appender
		*(*iface)(unsafe.Pointer(&a)) = iface{n.appTab, p}
		return a.AppendMsgpack(b)
	case opDelegate:
		return encodeDelegate(b, n.typ, p)
	}
	return b, n.unsupported()
}

func (n *node) unsupported() error {
	if n.err != nil {
		return n.err
	}
	return fmt.Errorf("codec: unsupported type %v", n.typ)
}

func (n *node) encodeElems(b []byte, p unsafe.Pointer, count int) ([]byte, error) {
	var err error
	for i := 0; i < count; i++ {
		if b, err = n.elem.encode(b, unsafe.Add(p, uintptr(i)*n.size)); err != nil {
			return b, fmt.Errorf("%v[%d]: %w", n.typ, i, err)
		}
	}
	return b, nil
}

func (n *node) encodeStruct(b []byte, p unsafe.Pointer) ([]byte, error) {
	var err error
	if n.asArray {
		b = msgp.AppendArrayLen(b, len(n.fields))
		for i := range n.fields {
			if b, err = n.encodeField(b, p, &n.fields[i]); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	count := len(n.fields)
	if n.hasOmitEmpty {
		count = 0
		for i := range n.fields {
			if !n.fields[i].omitted(p) {
				count++
			}
		}
	}
	b = msgp.AppendMapLen(b, count)
	for i := range n.fields {
		f := &n.fields[i]
		if n.hasOmitEmpty && f.omitted(p) {
			continue
		}
		b = append(b, f.key...)
		if b, err = n.encodeField(b, p, f); err != nil {
			return b, err
		}
	}
	return b, nil
}

// encodeField encodes field f of the struct at p.
func (n *node) encodeField(b []byte, p unsafe.Pointer, f *sfield) ([]byte, error) {
	fp, ok := f.addr(p)
	if !ok {
		// A field behind a nil embedded pointer: vmihailenco writes nil
		// (in a map only without omitempty, which omits it).
		return append(b, 0xc0), nil
	}
	b, err := f.node.encode(b, fp)
	if err != nil {
		return b, fmt.Errorf("%v.%s: %w", n.typ, f.name, err)
	}
	return b, nil
}

// omitted is vmihailenco's field.Omit: in a struct with any omitempty field,
// fields behind a nil embedded pointer are dropped whether or not they are
// omitempty themselves.
func (f *sfield) omitted(p unsafe.Pointer) bool {
	fp, ok := f.addr(p)
	if !ok {
		return true
	}
	return f.omitEmpty && f.node.isEmpty(fp)
}

// encodeMap walks the map by reflection (Go maps have no stable layout to
// walk otherwise), reusing one key and one value buffer so that the walk
// does not allocate per entry.
func (n *node) encodeMap(b []byte, p unsafe.Pointer) ([]byte, error) {
	m := reflect.NewAt(n.typ, p).Elem()
	if m.IsNil() {
		return append(b, 0xc0), nil
	}
	b = msgp.AppendMapLen(b, m.Len())
	k := reflect.New(n.typ.Key()).Elem()
	v := reflect.New(n.typ.Elem()).Elem()
	kp := k.Addr().UnsafePointer()
	vp := v.Addr().UnsafePointer()
	it := m.MapRange()
	var err error
	for it.Next() {
		k.SetIterKey(it)
		v.SetIterValue(it)
		if b, err = n.key.encode(b, kp); err != nil {
			return b, fmt.Errorf("%v key: %w", n.typ, err)
		}
		if b, err = n.elem.encode(b, vp); err != nil {
			return b, fmt.Errorf("%v value: %w", n.typ, err)
		}
	}
	return b, nil
}
