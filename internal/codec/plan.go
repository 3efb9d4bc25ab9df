package codec

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
)

type op uint8

const (
	opBool op = iota
	opInt
	opInt8
	opInt16
	opInt32
	opInt64
	opUint
	opUint8
	opUint16
	opUint32
	opUint64
	opFloat32
	opFloat64
	opString
	opBytes     // []byte (any slice of a uint8 kind): bin
	opByteArray // [N]byte: bin of exactly N bytes on encode
	opSlice
	opArray
	opMap
	opPtr
	opStruct
	opExt      // *T implements Appender and FastDecoder
	opDelegate // vmihailenco handles this sub-value
	opUnsupported
)

// node is the compiled plan for one type. Nodes are shared between plans
// and may be cyclic (recursive types); they are immutable once published.
type node struct {
	op   op
	typ  reflect.Type
	elem *node // slice, array, pointer, map value
	key  *node // map key
	size uintptr
	n    int // array length
	err  error

	zeroer bool // has IsZero, which omitempty consults
	intern bool // a struct with intern tags: the whole message must be delegated

	// struct
	fields       []sfield
	names        []nameEnt // decoding lookup when small
	nameMap      map[string]int
	asArray      bool
	hasOmitEmpty bool

	// opExt: the itabs of *T for Appender and FastDecoder, so calls need no
	// interface conversion at run time.
	appTab, decTab unsafe.Pointer
}

type nameEnt struct {
	name string
	idx  int
}

// Index values in names/nameMap other than field indexes.
const embeddedKey = -1

type sfield struct {
	name      string
	key       []byte // the name, msgpack-encoded
	offs      []uintptr
	derefs    []deref // len(offs)-1 embedded pointers on the way
	node      *node
	omitEmpty bool
}

type deref struct {
	elem     reflect.Type
	settable bool
}

// addr returns the field's address, or false when an embedded pointer on
// the way is nil.
func (f *sfield) addr(p unsafe.Pointer) (unsafe.Pointer, bool) {
	p = unsafe.Add(p, f.offs[0])
	for _, off := range f.offs[1:] {
		p = *(*unsafe.Pointer)(p)
		if p == nil {
			return nil, false
		}
		p = unsafe.Add(p, off)
	}
	return p, true
}

// addrAlloc is addr for decoding: nil embedded pointers are allocated, as
// vmihailenco does, when it could set them.
func (f *sfield) addrAlloc(p unsafe.Pointer) (unsafe.Pointer, error) {
	p = unsafe.Add(p, f.offs[0])
	for i, off := range f.offs[1:] {
		pp := (*unsafe.Pointer)(p)
		if *pp == nil {
			d := f.derefs[i]
			if !d.settable {
				return nil, fmt.Errorf("codec: field %s: nil unexported embedded *%v", f.name, d.elem)
			}
			*pp = reflect.New(d.elem).UnsafePointer()
		}
		p = unsafe.Add(*pp, off)
	}
	return p, nil
}

type builder struct {
	nodes map[reflect.Type]*node
}

// nodes is shared by all plans; guarded by buildMu.
var nodes = map[reflect.Type]*node{}

func build(t reflect.Type) *Codec {
	b := builder{nodes: nodes}
	root := b.node(t)
	c := &Codec{typ: t, root: root, direct: DirectIface(t)}
	zero := reflect.Zero(t).Interface()
	c.itype = (*eface)(unsafe.Pointer(&zero)).typ
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.intern {
			c.whole = true
		}
		walk(n.elem)
		walk(n.key)
		for i := range n.fields {
			walk(n.fields[i].node)
		}
	}
	walk(root)
	return c
}

func (b *builder) node(t reflect.Type) *node {
	if n, ok := b.nodes[t]; ok {
		return n
	}
	n := &node{typ: t}
	b.nodes[t] = n
	b.fill(n)
	return n
}

func (b *builder) fill(n *node) {
	t := n.typ
	n.zeroer = t.Implements(isZeroerType)
	if t.Kind() == reflect.Struct {
		// Struct field tables are needed even for delegated structs:
		// omitempty judges emptiness field by field.
		b.fillStruct(n)
	}
	if t.Kind() != reflect.Ptr && t.Kind() != reflect.Interface {
		if pt := reflect.PointerTo(t); pt.Implements(appenderType) && pt.Implements(fastDecoderType) {
			n.op = opExt
			v := reflect.New(t).Interface()
			a := v.(Appender)
			d := v.(FastDecoder)
			n.appTab = (*iface)(unsafe.Pointer(&a)).tab
			n.decTab = (*iface)(unsafe.Pointer(&d)).tab
			return
		}
	}
	if t.Kind() == reflect.Ptr && t.Elem().Kind() != reflect.Ptr {
		// vmihailenco treats a nil *T as nil and otherwise hands the pointer
		// to T's marshaler: exactly a pointer node over an opExt node.
		if t.Implements(appenderType) && t.Implements(fastDecoderType) {
			n.op = opPtr
			n.elem = b.node(t.Elem())
			return
		}
	}
	if customType(t) {
		n.op = opDelegate
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		n.op = opBool
	case reflect.Int:
		n.op = opInt
	case reflect.Int8:
		n.op = opInt8
	case reflect.Int16:
		n.op = opInt16
	case reflect.Int32:
		n.op = opInt32
	case reflect.Int64:
		n.op = opInt64
	case reflect.Uint:
		n.op = opUint
	case reflect.Uint8:
		n.op = opUint8
	case reflect.Uint16:
		n.op = opUint16
	case reflect.Uint32:
		n.op = opUint32
	case reflect.Uint64:
		n.op = opUint64
	case reflect.Float32:
		n.op = opFloat32
	case reflect.Float64:
		n.op = opFloat64
	case reflect.String:
		n.op = opString
	case reflect.Interface:
		n.op = opDelegate
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			n.op = opBytes
			return
		}
		n.op = opSlice
		n.elem = b.node(t.Elem())
		n.size = t.Elem().Size()
	case reflect.Array:
		n.n = t.Len()
		if t.Elem().Kind() == reflect.Uint8 {
			n.op = opByteArray
			return
		}
		n.op = opArray
		n.elem = b.node(t.Elem())
		n.size = t.Elem().Size()
	case reflect.Map:
		// Struct, array, pointer keys are rare, and map[string]any goes
		// through vmihailenco's own paths (Encode per value, not
		// EncodeValue): vmihailenco is the reference for those.
		if !scalarKind(t.Key().Kind()) || t.Key() == stringType && t.Elem() == anyType {
			n.op = opDelegate
			return
		}
		n.key = b.node(t.Key())
		if n.key.op > opString {
			n.op = opDelegate
			n.key = nil
			return
		}
		n.op = opMap
		n.elem = b.node(t.Elem())
	case reflect.Ptr:
		n.op = opPtr
		n.elem = b.node(t.Elem())
	case reflect.Struct:
		if n.err != nil {
			n.op = opUnsupported
			return
		}
		n.op = opStruct
	default:
		// Uintptr, complex, chan, func, unsafe.Pointer: vmihailenco
		// refuses (or panics on) them.
		n.op = opUnsupported
		n.err = fmt.Errorf("codec: unsupported type %v", t)
	}
}

func (b *builder) fillStruct(n *node) {
	t := n.typ
	si := structFields(t)
	if si.bad != nil {
		n.err = si.bad
		return
	}
	n.intern = si.intern
	n.asArray = si.asArray
	n.hasOmitEmpty = si.hasOmitEmpty
	idx := make(map[*fieldInfo]int, len(si.list))
	n.fields = make([]sfield, len(si.list))
	for i, fi := range si.list {
		idx[fi] = i
		f := &n.fields[i]
		f.name = fi.name
		f.key = msgp.AppendStr(nil, fi.name)
		f.omitEmpty = fi.omitEmpty
		cur := t
		var acc uintptr
		exported := true
		for j, k := range fi.index {
			if j > 0 && cur.Kind() == reflect.Ptr {
				f.offs = append(f.offs, acc)
				f.derefs = append(f.derefs, deref{elem: cur.Elem(), settable: exported})
				cur = cur.Elem()
				acc = 0
			}
			sf := cur.Field(k)
			acc += sf.Offset
			cur = sf.Type
			exported = sf.IsExported()
		}
		f.offs = append(f.offs, acc)
	}
	// Resolve nodes only after the field table is complete: a recursive
	// type reaches this node again through b.node and must see its fields.
	for i, fi := range si.list {
		n.fields[i].node = b.node(fi.typ)
	}
	for name, fi := range si.byName {
		k := embeddedKey
		if !fi.embedded {
			k = idx[fi]
		}
		n.names = append(n.names, nameEnt{name, k})
	}
	if len(n.names) > 8 {
		n.nameMap = make(map[string]int, len(n.names))
		for _, e := range n.names {
			n.nameMap[e.name] = e.idx
		}
		n.names = nil
	}
}

func (n *node) lookup(key []byte) (int, bool) {
	if n.nameMap != nil {
		i, ok := n.nameMap[string(key)]
		return i, ok
	}
	for _, e := range n.names {
		if e.name == string(key) {
			return e.idx, true
		}
	}
	return 0, false
}

// iface is the layout of a non-empty interface value.
type iface struct {
	tab  unsafe.Pointer
	data unsafe.Pointer
}

var (
	stringType = reflect.TypeOf("")
	anyType    = reflect.TypeOf((*any)(nil)).Elem()
)

func scalarKind(k reflect.Kind) bool {
	return k >= reflect.Bool && k <= reflect.Float64 && k != reflect.Uintptr || k == reflect.String
}
