package codec

import (
	"encoding"
	"fmt"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/tagparser/v2"
)

// fieldInfo is one entry of vmihailenco's field table for a struct.
type fieldInfo struct {
	name      string
	index     []int
	typ       reflect.Type
	omitEmpty bool
	// embedded marks the name of an inlined embedded struct: vmihailenco
	// decodes a key with that name into the whole embedded value, which
	// overlaps the promoted fields; the plan refuses it instead.
	embedded bool
}

// structInfo mirrors vmihailenco's getFields: list is the encoding order,
// byName is what decoding looks keys up in (last writer wins, aliases
// included, promoted-through names not).
type structInfo struct {
	list         []*fieldInfo
	byName       map[string]*fieldInfo
	asArray      bool
	hasOmitEmpty bool
	intern       bool
	bad          error // a layout vmihailenco panics on
}

func (si *structInfo) add(f *fieldInfo) {
	si.byName[f.name] = f
	si.list = append(si.list, f)
	if f.omitEmpty {
		si.hasOmitEmpty = true
	}
}

// structFields follows vmihailenco v5.4.1's getFields step by step, since
// its quirks (sticky omitempty after _msgpack, order-dependent auto-inlining,
// aliases only at the top level) decide the wire form.
func structFields(t reflect.Type) *structInfo {
	si := &structInfo{byName: make(map[string]*fieldInfo, t.NumField())}
	var omitAll bool
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := tagparser.Parse(f.Tag.Get("msgpack"))
		if tag.Name == "-" {
			continue
		}
		if f.Name == "_msgpack" {
			si.asArray = tag.HasOption("as_array") || tag.HasOption("asArray")
			if tag.HasOption("omitempty") {
				omitAll = true
			}
		}
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		fi := &fieldInfo{
			name:      tag.Name,
			index:     append([]int(nil), f.Index...),
			typ:       f.Type,
			omitEmpty: omitAll || tag.HasOption("omitempty"),
		}
		if tag.HasOption("intern") {
			switch f.Type.Kind() {
			case reflect.String, reflect.Interface:
				si.intern = true
			default:
				si.bad = fmt.Errorf("codec: %v.%s: intern on %v", t, f.Name, f.Type)
			}
		}
		if fi.name == "" {
			fi.name = f.Name
		}
		if f.Anonymous && !tag.HasOption("noinline") {
			var inline bool
			if tag.HasOption("inline") {
				if f.Type.Kind() != reflect.Struct {
					si.bad = fmt.Errorf("codec: %v.%s: inline on %v", t, f.Name, f.Type)
					continue
				}
				si.inlineAll(fi, structFields(f.Type))
				inline = true
			} else {
				inline = si.tryInline(fi)
			}
			if inline {
				e := *fi
				e.embedded = true
				si.byName[fi.name] = &e
				continue
			}
		}
		si.add(fi)
		if alias, ok := tag.Options["alias"]; ok {
			si.byName[alias] = fi
		}
	}
	return si
}

func (si *structInfo) merge(in *structInfo) {
	si.intern = si.intern || in.intern
	if si.bad == nil {
		si.bad = in.bad
	}
}

func (si *structInfo) inlineAll(parent *fieldInfo, in *structInfo) {
	si.merge(in)
	for _, f := range in.list {
		if _, ok := si.byName[f.name]; ok {
			continue // shadowed by an earlier field
		}
		si.add(prefixed(parent, f))
	}
}

// tryInline is vmihailenco's shouldInline: embedded plain structs (or
// pointers to them) are inlined unless one of their names is already taken.
func (si *structInfo) tryInline(parent *fieldInfo) bool {
	t := parent.typ
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || customType(t) {
		return false
	}
	in := structFields(t)
	for _, f := range in.list {
		if _, ok := si.byName[f.name]; ok {
			return false
		}
	}
	si.merge(in)
	for _, f := range in.list {
		si.add(prefixed(parent, f))
	}
	return true
}

func prefixed(parent, f *fieldInfo) *fieldInfo {
	c := *f
	c.index = append(append(make([]int, 0, len(parent.index)+len(f.index)), parent.index...), f.index...)
	return &c
}

var (
	customEncoderType     = reflect.TypeOf((*msgpack.CustomEncoder)(nil)).Elem()
	customDecoderType     = reflect.TypeOf((*msgpack.CustomDecoder)(nil)).Elem()
	marshalerType         = reflect.TypeOf((*msgpack.Marshaler)(nil)).Elem()
	unmarshalerType       = reflect.TypeOf((*msgpack.Unmarshaler)(nil)).Elem()
	binaryMarshalerType   = reflect.TypeOf((*encoding.BinaryMarshaler)(nil)).Elem()
	binaryUnmarshalerType = reflect.TypeOf((*encoding.BinaryUnmarshaler)(nil)).Elem()
	textMarshalerType     = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	textUnmarshalerType   = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	isZeroerType          = reflect.TypeOf((*interface{ IsZero() bool })(nil)).Elem()
	appenderType          = reflect.TypeOf((*Appender)(nil)).Elem()
	fastDecoderType       = reflect.TypeOf((*FastDecoder)(nil)).Elem()
)

var customIfaces = []reflect.Type{
	customEncoderType, customDecoderType, marshalerType, unmarshalerType,
	binaryMarshalerType, binaryUnmarshalerType, textMarshalerType, textUnmarshalerType,
}

// customType reports whether vmihailenco hands t (or, for addressable
// values, *t) to one of the marshaling interfaces it honours, in either
// direction.
func customType(t reflect.Type) bool {
	for _, it := range customIfaces {
		if t.Implements(it) {
			return true
		}
	}
	if t.Kind() != reflect.Ptr {
		pt := reflect.PointerTo(t)
		for _, it := range customIfaces {
			if pt.Implements(it) {
				return true
			}
		}
	}
	return false
}
