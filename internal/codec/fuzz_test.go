package codec

import (
	"testing"
	"time"
)

type FuzzMsg struct {
	A   int8
	B   uint16
	C   int64
	F   float32
	G   float64
	S   string
	Bs  []byte
	Arr [3]byte
	L   []int32
	P   *Inner
	M   map[string]uint8
	N   Inner `msgpack:"n"`
	E   Embedded
	AA  AsArray
	Any any
	T   time.Time
	ID  ID
	R   *Recursive
}

func FuzzDecode(f *testing.F) {
	seeds := []any{
		FuzzMsg{},
		FuzzMsg{A: -5, B: 700, C: -1 << 40, F: 1.5, G: -2.25, S: "hello", Bs: []byte{1, 2}, Arr: [3]byte{9},
			L: []int32{-1, 1 << 20}, P: &Inner{1, "x"}, M: map[string]uint8{"k": 200}, N: Inner{2, "y"},
			E: Embedded{Inner: Inner{3, "z"}, Deep: &Deep{D1: 4}}, AA: AsArray{A: 1, C: &Inner{}}, Any: []any{"a", 1},
			T: time.Unix(1, 2).UTC(), ID: ID{"id", 7}, R: &Recursive{V: 1, Next: &Recursive{}}},
		map[string]any{"A": 1000, "B": -1, "S": []byte("bin"), "Bs": "str", "zz": []any{nil}},
		[]any{1, 2},
		nil,
	}
	for _, s := range seeds {
		f.Add(refEncode(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode[FuzzMsg](t, data)
		checkDecode[Tagged](t, data)
	})
}
