package codec

import (
	"bytes"
	"reflect"
	"testing"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

type benchBytes struct{ Data []byte }

type benchMixed struct {
	ID    int64
	Count uint32
	Flags int8
	Name  string
	In    Inner
}

func benchValues() (benchBytes, benchMixed) {
	return benchBytes{Data: bytes.Repeat([]byte{7}, 64)},
		benchMixed{ID: 1 << 40, Count: 1000, Flags: -3, Name: "some-actor-name", In: Inner{X: 42, Y: "inner"}}
}

func benchEncode[T any](b *testing.B, v T) {
	c := Of(reflect.TypeOf(v))
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = c.Append(buf[:0], unsafe.Pointer(&v))
	}
}

func benchEncodeRef[T any](b *testing.B, v T) {
	var w appendWriter
	enc := msgpack.NewEncoder(&w)
	enc.UseCompactInts(true)
	b.ReportAllocs()
	for b.Loop() {
		w.b = w.b[:0]
		_ = enc.Encode(v)
	}
}

func benchDecode[T any](b *testing.B, v T) {
	c := Of(reflect.TypeOf(v))
	data, _ := c.Append(nil, unsafe.Pointer(&v))
	b.ReportAllocs()
	for b.Loop() {
		var out T
		if err := c.Decode(data, unsafe.Pointer(&out), false); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecodeRef[T any](b *testing.B, v T) {
	data := refEncode(b, v)
	b.ReportAllocs()
	for b.Loop() {
		var out T
		if err := msgpack.Unmarshal(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBytes(b *testing.B) {
	v, _ := benchValues()
	b.Run("Encode/codec", func(b *testing.B) { benchEncode(b, v) })
	b.Run("Encode/vmihailenco", func(b *testing.B) { benchEncodeRef(b, v) })
	b.Run("Decode/codec", func(b *testing.B) { benchDecode(b, v) })
	b.Run("Decode/vmihailenco", func(b *testing.B) { benchDecodeRef(b, v) })
}

func BenchmarkMixed(b *testing.B) {
	_, v := benchValues()
	b.Run("Encode/codec", func(b *testing.B) { benchEncode(b, v) })
	b.Run("Encode/vmihailenco", func(b *testing.B) { benchEncodeRef(b, v) })
	b.Run("Decode/codec", func(b *testing.B) { benchDecode(b, v) })
	b.Run("Decode/vmihailenco", func(b *testing.B) { benchDecodeRef(b, v) })
}
