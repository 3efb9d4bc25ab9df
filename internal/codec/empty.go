package codec

import (
	"reflect"
	"unsafe"
)

// isEmpty is vmihailenco's isEmptyValue, which decides omitempty: an
// interface is judged by its dynamic value, then IsZero wins if the type
// has it, then the kind decides (arrays only when of length 0, structs
// when every field would be omitted).
func (n *node) isEmpty(p unsafe.Pointer) bool {
	t := n.typ
	if t.Kind() == reflect.Interface {
		v := reflect.NewAt(t, p).Elem()
		if v.IsNil() {
			return true
		}
		return valueIsEmpty(v.Elem())
	}
	if n.zeroer {
		v := reflect.NewAt(t, p).Elem()
		if nilable(t.Kind()) && v.IsNil() {
			return true
		}
		return v.Interface().(interface{ IsZero() bool }).IsZero()
	}
	switch t.Kind() {
	case reflect.Bool:
		return !*(*bool)(p)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return reflect.NewAt(t, p).Elem().IsZero() || isNegZero(t, p)
	case reflect.String:
		return len(*(*string)(p)) == 0
	case reflect.Slice:
		return (*sliceHeader)(p).len == 0
	case reflect.Map:
		return reflect.NewAt(t, p).Elem().Len() == 0
	case reflect.Array:
		return t.Len() == 0
	case reflect.Ptr:
		return *(*unsafe.Pointer)(p) == nil
	case reflect.Struct:
		if n.err != nil {
			return false
		}
		if !n.hasOmitEmpty {
			return len(n.fields) == 0
		}
		for i := range n.fields {
			if !n.fields[i].omitted(p) {
				return false
			}
		}
		return true
	}
	return false
}

// isNegZero: vmihailenco compares floats with == 0, so -0 is empty too,
// while reflect's IsZero looks at the bits.
func isNegZero(t reflect.Type, p unsafe.Pointer) bool {
	switch t.Kind() {
	case reflect.Float32:
		return *(*float32)(p) == 0
	case reflect.Float64:
		return *(*float64)(p) == 0
	}
	return false
}

// valueIsEmpty judges a dynamic value held in an interface through the
// plan of its type.
func valueIsEmpty(v reflect.Value) bool {
	c := Of(v.Type())
	if !v.CanAddr() {
		cp := reflect.New(v.Type()).Elem()
		cp.Set(v)
		v = cp
	}
	return c.root.isEmpty(v.Addr().UnsafePointer())
}

func nilable(k reflect.Kind) bool {
	switch k {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Ptr, reflect.Slice:
		return true
	}
	return false
}
