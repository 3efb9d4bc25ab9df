package codec

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

func refEncode(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("vmihailenco encode %T: %v", v, err)
	}
	return buf.Bytes()
}

func hasMap(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Map, reflect.Interface:
		return true
	case reflect.Ptr, reflect.Slice, reflect.Array:
		return hasMap(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if hasMap(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

// check compares both directions against vmihailenco for one value.
func check[T any](t *testing.T, v T) {
	t.Helper()
	c := Of(reflect.TypeOf((*T)(nil)).Elem())
	want := refEncode(t, v)
	got, err := c.Append(nil, unsafe.Pointer(&v))
	if err != nil {
		t.Fatalf("%T: Append: %v", v, err)
	}
	if hasMap(c.typ, map[reflect.Type]bool{}) {
		var a, b T
		if err := msgpack.Unmarshal(want, &a); err != nil {
			t.Fatalf("%T: unmarshal ref: %v", v, err)
		}
		if err := msgpack.Unmarshal(got, &b); err != nil {
			t.Fatalf("%T: unmarshal ours: %v (% x)", v, err, got)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%T: encodings decode differently:\n ref  %#v\n ours %#v", v, a, b)
		}
		if len(want) != len(got) {
			t.Fatalf("%T: encoding lengths differ: ref % x ours % x", v, want, got)
		}
	} else if !bytes.Equal(want, got) {
		t.Fatalf("%T %+v: encoding differs:\n ref  % x\n ours % x", v, v, want, got)
	}
	checkDecode[T](t, want)
}

// checkDecode: Decode of data equals msgpack.Unmarshal's result, or
// errors. It returns whether Decode succeeded. The reference only runs when
// Decode succeeded: on hostile input vmihailenco allocates whatever a
// length prefix asks for.
func checkDecode[T any](t testing.TB, data []byte) bool {
	t.Helper()
	c := Of(reflect.TypeOf((*T)(nil)).Elem())
	ok := true
	for _, alias := range []bool{false, true} {
		var got T
		if err := c.Decode(data, unsafe.Pointer(&got), alias); err != nil {
			ok = false
			continue
		}
		var ref T
		// vmihailenco panics on some inputs (nil into a time.Time field);
		// that counts as a failure the fast path must not paper over.
		if err := guard(func() error { return msgpack.Unmarshal(data, &ref) }); err != nil {
			t.Fatalf("%T: Decode(% x) succeeded with %#v, msgpack.Unmarshal failed: %v", got, data, got, err)
		}
		if !sameValue(reflect.ValueOf(ref), reflect.ValueOf(got)) {
			t.Fatalf("%T: Decode(% x):\n ref  %#v\n ours %#v", got, data, ref, got)
		}
	}
	return ok
}

// sameValue is reflect.DeepEqual but for NaN, which is not equal to
// itself: a NaN that both decoders produce is the same value here. The
// decoded values it compares are trees (no cycles).
func sameValue(x, y reflect.Value) bool {
	if !x.IsValid() || !y.IsValid() {
		return x.IsValid() == y.IsValid()
	}
	if x.Type() != y.Type() {
		return false
	}
	switch x.Kind() {
	case reflect.Float32, reflect.Float64:
		a, b := x.Float(), y.Float()
		return a == b || math.IsNaN(a) && math.IsNaN(b)
	case reflect.Bool:
		return x.Bool() == y.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return x.Int() == y.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return x.Uint() == y.Uint()
	case reflect.String:
		return x.String() == y.String()
	case reflect.Pointer, reflect.Interface:
		if x.IsNil() || y.IsNil() {
			return x.IsNil() == y.IsNil()
		}
		return sameValue(x.Elem(), y.Elem())
	case reflect.Struct:
		for i := range x.NumField() {
			if !sameValue(x.Field(i), y.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if x.Kind() == reflect.Slice && x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		for i := range x.Len() {
			if !sameValue(x.Index(i), y.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if x.IsNil() != y.IsNil() || x.Len() != y.Len() {
			return false
		}
		for it := x.MapRange(); it.Next(); {
			if v := y.MapIndex(it.Key()); !v.IsValid() || !sameValue(it.Value(), v) {
				return false
			}
		}
		return true
	}
	// Complex numbers, funcs, channels: none is decoded from msgpack.
	return x.Kind() == y.Kind() && x.IsZero() && y.IsZero()
}

func TestSameValue(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		x, y any
		same bool
	}{
		{FuzzMsg{Any: float32(nan)}, FuzzMsg{Any: float32(nan)}, true},
		{FuzzMsg{G: nan}, FuzzMsg{G: 1}, false},
		{FuzzMsg{Any: float32(1)}, FuzzMsg{Any: float64(1)}, false},
		{FuzzMsg{Bs: []byte{}}, FuzzMsg{}, false},
		{FuzzMsg{M: map[string]uint8{"a": 1}}, FuzzMsg{M: map[string]uint8{"a": 1}}, true},
		{FuzzMsg{M: map[string]uint8{"a": 1}}, FuzzMsg{M: map[string]uint8{"b": 1}}, false},
		{FuzzMsg{P: &Inner{1, "x"}}, FuzzMsg{P: &Inner{1, "x"}}, true},
		{FuzzMsg{P: &Inner{1, "x"}}, FuzzMsg{P: &Inner{1, "y"}}, false},
		{FuzzMsg{T: time.Unix(1, 2).UTC()}, FuzzMsg{T: time.Unix(1, 2).UTC()}, true},
		{FuzzMsg{Arr: [3]byte{1}}, FuzzMsg{Arr: [3]byte{2}}, false},
	} {
		if got := sameValue(reflect.ValueOf(c.x), reflect.ValueOf(c.y)); got != c.same {
			t.Errorf("sameValue(%#v, %#v) = %v", c.x, c.y, got)
		}
	}
}

func mustDecode[T any](t *testing.T, data []byte) {
	t.Helper()
	if !checkDecode[T](t, data) {
		var v T
		t.Fatalf("%T: Decode(% x) failed; want the fast path to accept it", v, data)
	}
}

type Scalars struct {
	B   bool
	I   int
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	U   uint
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	F32 float32
	F64 float64
	S   string
	Bs  []byte
	Arr [4]byte
}

type MyInt int16
type MyString string

type Inner struct {
	X int
	Y string `msgpack:"why"`
}

type Tagged struct {
	Renamed  int     `msgpack:"r"`
	Skipped  int     `msgpack:"-"`
	Empty    string  `msgpack:",omitempty"`
	EmptyP   *Inner  `msgpack:",omitempty"`
	EmptyS   []int   `msgpack:",omitempty"`
	EmptyA   [2]int  `msgpack:",omitempty"`
	EmptyF   float64 `msgpack:"f,omitempty"`
	EmptyT   Inner   `msgpack:",omitempty"`
	Alias    int     `msgpack:"al,alias:other"`
	hidden   int
	Named    MyInt
	NamedS   MyString
	Nested   Inner
	PtrI     *Inner
	PtrPtr   **int
	Ints     []int
	Strs     []string
	Inners   []Inner
	PInners  []*Inner
	Arr      [3]int16
	NilBytes []byte
	Matrix   [][]byte
}

type Embedded struct {
	Inner
	*Deep
	Own int
}

type Deep struct {
	D1 uint8
	D2 []string
}

type Shadow struct {
	X     int
	Inner // X collides: not inlined, encoded as field "Inner"
}

type NoInline struct {
	Inner `msgpack:",noinline"`
	Z     int
}

type OmitEmbedded struct {
	*Deep
	A int `msgpack:",omitempty"`
}

type AsArray struct {
	//lint:ignore U1000 read by tag only
	_msgpack struct{} `msgpack:",as_array"`
	A        int
	B        string
	C        *Inner
}

type Maps struct {
	SS  map[string]string
	SI  map[string]int
	IS  map[int64]string
	SB  map[string]bool
	SSt map[string]Inner
	Nil map[string]int
	Any map[string]any
}

type Custom struct{ v int }

func (c Custom) EncodeMsgpack(e *msgpack.Encoder) error {
	return e.EncodeString(strings.Repeat("c", c.v))
}
func (c *Custom) DecodeMsgpack(d *msgpack.Decoder) error {
	s, err := d.DecodeString()
	c.v = len(s)
	return err
}

type WithCustom struct {
	C   Custom
	PC  *Custom
	Any any
	Err error
	T   time.Time
	Dur time.Duration
	Is  []any
}

type Recursive struct {
	V    int
	Next *Recursive
	Kids []Recursive
}

func TestScalarsMatchVmihailenco(t *testing.T) {
	check(t, Scalars{})
	ints := []int64{0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
		65535, 65536, math.MaxInt32, math.MinInt32, math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxUint32, math.MaxInt64, math.MinInt64}
	for _, i := range ints {
		u := uint64(i)
		check(t, Scalars{
			B: i&1 == 1, I: int(i), I8: int8(i), I16: int16(i), I32: int32(i), I64: i,
			U: uint(u), U8: uint8(u), U16: uint16(u), U32: uint32(u), U64: u,
			F32: float32(i), F64: float64(i) / 3,
		})
	}
	for _, f := range []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64} {
		check(t, Scalars{F64: f, F32: float32(f)})
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("s", n)
		check(t, Scalars{S: s, Bs: []byte(s), Arr: [4]byte{1, 2, 3, 4}})
	}
	check(t, Scalars{Bs: []byte{}})
	check(t, 42)
	check(t, "top")
	check(t, []byte("top"))
	check(t, []int{1, 2, 3})
	check(t, MyInt(-300))
	check(t, &Inner{X: 1})
	check(t, (*Inner)(nil))
	check(t, [2]string{"a", "b"})
	check(t, time.Second)
}

func TestStructsMatchVmihailenco(t *testing.T) {
	one := 1
	p1 := &one
	check(t, Tagged{})
	check(t, Tagged{
		Renamed: 1, Skipped: 2, Empty: "e", EmptyP: &Inner{}, EmptyS: []int{}, EmptyF: math.Copysign(0, -1),
		EmptyT: Inner{X: 1}, Alias: 3, hidden: 4, Named: -5, NamedS: "ns", Nested: Inner{7, "seven"},
		PtrI: &Inner{}, PtrPtr: &p1, Ints: []int{}, Strs: []string{"a", ""}, Inners: []Inner{{1, "a"}},
		PInners: []*Inner{nil, {2, "b"}}, Arr: [3]int16{-1, 0, 1}, NilBytes: nil, Matrix: [][]byte{nil, {}, {1}},
	})
	check(t, Embedded{})
	check(t, Embedded{Inner: Inner{1, "x"}, Deep: &Deep{D1: 9, D2: []string{"q"}}, Own: 3})
	check(t, Shadow{X: 1, Inner: Inner{2, "y"}})
	check(t, NoInline{Inner{3, "z"}, 4})
	check(t, OmitEmbedded{})
	check(t, OmitEmbedded{Deep: &Deep{}, A: 1})
	check(t, AsArray{})
	check(t, AsArray{A: 1, B: "b", C: &Inner{X: 2}})
	check(t, Recursive{V: 1, Next: &Recursive{V: 2, Kids: []Recursive{{V: 3}}}})
}

func TestMapsMatchVmihailenco(t *testing.T) {
	check(t, Maps{})
	check(t, Maps{
		SS: map[string]string{"a": "b", "c": ""}, SI: map[string]int{"x": -1, "y": 1 << 40},
		IS: map[int64]string{-5: "m", 1 << 33: "big"}, SB: map[string]bool{"t": true},
		SSt: map[string]Inner{"i": {1, "one"}}, Any: map[string]any{"k": []any{int8(1), "s"}},
	})
	check(t, map[string]int{})
}

func TestDelegatedMatchVmihailenco(t *testing.T) {
	check(t, WithCustom{})
	check(t, WithCustom{
		C: Custom{3}, PC: &Custom{2}, Any: map[string]any{"a": "b"}, T: time.Unix(1700000000, 5).UTC(),
		Dur: -time.Minute, Is: []any{nil, true, "x", 1.5},
	})
	check(t, Custom{4})
	check(t, time.Unix(5, 0).UTC())
	var a any = "x"
	check(t, a)
}

// Inputs vmihailenco produces for other types decode the same or fail.
func TestCrossTypeDecoding(t *testing.T) {
	enc := func(v any) []byte { return refEncode(t, v) }
	type small struct {
		I8  int8
		U8  uint8
		F32 float32
		S   string
		B   []byte
	}
	type big struct {
		I8    int64
		U8    int64
		F32   float32
		S     []byte
		B     string
		Extra map[string]any
	}
	mustDecode[small](t, enc(big{I8: 1000, U8: -1, F32: 1.5, S: []byte("bin"), B: "str", Extra: map[string]any{"z": []any{1, 2}}}))
	mustDecode[small](t, enc(big{I8: math.MinInt64, U8: math.MaxInt64, F32: 2}))
	mustDecode[small](t, enc(nil))
	mustDecode[small](t, enc(map[string]any{"I8": nil, "U8": nil, "F32": nil, "S": nil, "B": nil}))
	mustDecode[small](t, enc(map[string]any{"F32": int64(-7), "I8": uint64(math.MaxUint64)}))
	mustDecode[small](t, enc([]any{1, 2, 3, "s", []byte("b")}))
	mustDecode[small](t, enc([]any{}))
	mustDecode[Inner](t, enc(Tagged{}))
	mustDecode[Tagged](t, enc(map[string]any{"other": 5}))
	mustDecode[Embedded](t, enc(map[string]any{"D1": 1}))
	mustDecode[AsArray](t, enc(map[string]any{"A": 1, "B": "b"}))
	mustDecode[[2]int](t, enc([]int{5}))
	mustDecode[[4]byte](t, enc("ab"))
	mustDecode[*int](t, enc(nil))
	mustDecode[[]int](t, enc([]int{}))
	mustDecode[map[string]int](t, enc(map[string]int{}))
	checkDecode[small](t, enc(map[string]any{"F32": 1.5})) // double into float32: both fail
	checkDecode[[1]int](t, enc([]int{1, 2}))               // too long: both fail
	checkDecode[Inner](t, enc(map[string]any{"X": 1.5}))   // float into int: both fail
	checkDecode[Embedded](t, enc(map[string]any{"Inner": Inner{X: 1}}))
	checkDecode[Inner](t, []byte{0x82, 0xa1, 'X', 1, 0xa1, 'X', 2}) // repeated key
	checkDecode[Inner](t, append(enc(Inner{}), 0))                  // trailing byte
	checkDecode[WithCustom](t, enc(map[string]any{"T": "not a time"}))
}

func TestDirectIface(t *testing.T) {
	type one struct{ P *int }
	type two struct{ A, B *int }
	type arr1 [1]map[int]int
	cases := map[reflect.Type]bool{
		reflect.TypeOf(&one{}):            true,
		reflect.TypeOf(one{}):             true,
		reflect.TypeOf(two{}):             false,
		reflect.TypeOf(arr1{}):            true,
		reflect.TypeOf([2]*int{}):         false,
		reflect.TypeOf(0):                 false,
		reflect.TypeOf(struct{ o one }{}): true,
		reflect.TypeOf(make(chan int)):    true,
		reflect.TypeOf(""):                false,
	}
	for typ, want := range cases {
		if got := DirectIface(typ); got != want {
			t.Errorf("DirectIface(%v) = %v, want %v", typ, got, want)
		}
		// Cross-check with the runtime: a direct value's data word is
		// the value itself.
		v := reflect.New(typ).Elem()
		e := v.Interface()
		data := (*[2]unsafe.Pointer)(unsafe.Pointer(&e))[1]
		if want && data != nil {
			t.Errorf("%v: zero value should have a nil data word", typ)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	type small struct {
		A int
		B string
		C Inner
		D []byte
	}
	v := small{A: 1, B: "b", C: Inner{2, "c"}, D: make([]byte, 64)}
	c := Of(reflect.TypeOf(v))
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = c.Append(buf[:0], unsafe.Pointer(&v))
	}); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
	data, _ := c.Append(nil, unsafe.Pointer(&v))
	if n := testing.AllocsPerRun(100, func() {
		var out small
		_ = c.Decode(data, unsafe.Pointer(&out), true)
	}); n > 3 { // out escapes; strings B and C.Y
		t.Errorf("Decode allocates %v times", n)
	}
}
