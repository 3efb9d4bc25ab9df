package core

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/actormesh/actormesh/internal/codec"
	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// The ids' fast msgpack forms are byte for byte their EncodeMsgpack forms,
// and read back to the same ids, alone and inside a message.
func TestIDWireFormsMatchMsgpack(t *testing.T) {
	procs := []ProcID{
		{},
		{Addr: transport.Addr{Transport: transport.Local, Address: "7"}, Name: "p"},
		{Addr: transport.Addr{Transport: transport.Unix, Address: "@abc"}, Name: "proc"},
		{Addr: transport.Addr{Transport: transport.TCP, Address: "[::1]:4000"}, Name: "x"},
	}
	for _, p := range procs {
		a := p.ActorID("actor", 300)
		port := a.Port(1 << 40)
		for _, v := range []any{p, a, port, PortRef[int]{ID: port}} {
			want, err := msgpack.Marshal(v)
			require.NoError(t, err)
			got, err := v.(codec.Appender).AppendMsgpack(nil)
			require.NoError(t, err)
			assert.Equal(t, want, got, "%T %v", v, v)

			ptr := reflect.New(reflect.TypeOf(v))
			next, err := ptr.Interface().(codec.FastDecoder).DecodeMsgpackAt(msgp.Reader{B: want})
			require.NoError(t, err)
			assert.Equal(t, len(want), next)
			assert.Equal(t, v, ptr.Elem().Interface())
		}
	}
	// Inside a message, through the codec both ways.
	m := Echo{Data: []byte("x"), Reply: PortRef[[]byte]{ID: procs[3].ActorID("a", 1).Port(9)}}
	want, err := msgpack.Marshal(m)
	require.NoError(t, err)
	got, err := codec.AppendValue(nil, m)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	var back Echo
	_, err = codec.Of(reflect.TypeFor[Echo]()).Unmarshal(want, unsafe.Pointer(&back), false)
	require.NoError(t, err)
	assert.Equal(t, m, back)
}

// Arbitrary bytes decoded as a message holding a PortRef never panic, and
// whatever the fast path accepts, msgpack.Unmarshal reads the same way.
func FuzzDecodeIDs(f *testing.F) {
	m := Echo{Data: []byte("x"), Reply: PortRef[[]byte]{ID: ProcID{Addr: transport.Addr{Transport: transport.Unix, Address: "@abc"}, Name: "p"}.ActorID("a", 1).Port(9)}}
	b, _ := msgpack.Marshal(m)
	f.Add(b)
	f.Add([]byte{0x82, 0xa4, 'D', 'a', 't', 'a', 0xc0, 0xa5, 'R', 'e', 'p', 'l', 'y', 0x95, 0xa0, 0xa0, 0xa0, 0, 0})
	c := codec.Of(reflect.TypeFor[Echo]())
	f.Fuzz(func(t *testing.T, in []byte) {
		var fast Echo
		if _, err := c.Unmarshal(in, unsafe.Pointer(&fast), false); err != nil {
			return
		}
		var slow Echo
		require.NoError(t, msgpack.Unmarshal(in, &slow))
		assert.Equal(t, slow, fast)
	})
}
