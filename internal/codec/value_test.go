package codec

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

type valueBlob struct{ Data []byte }
type valuePtr struct{ P *int } // held directly in an interface

func TestValueRoundTrip(t *testing.T) {
	n := 7
	for _, v := range []any{
		valueBlob{Data: []byte("hello")},
		valuePtr{P: &n},
		&valueBlob{Data: []byte{1}},
		map[string]int{"a": 1},
		"text",
		42,
		[]byte{9, 8},
	} {
		b, err := AppendValue(nil, v)
		require.NoError(t, err)
		want, err := msgpack.Marshal(v)
		require.NoError(t, err)
		if reflect.TypeOf(v).Kind() != reflect.Map {
			assert.Equal(t, want, b, "%T", v)
		}
		got, _, err := Of(reflect.TypeOf(v)).New(b, false)
		require.NoError(t, err)
		assert.Equal(t, v, got, "%T", v)
	}
	b, err := AppendValue(nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0xc0}, b)
}

func TestNewAliasing(t *testing.T) {
	b, err := AppendValue(nil, valueBlob{Data: []byte("payload")})
	require.NoError(t, err)
	c := Of(reflect.TypeFor[valueBlob]())
	v, aliased, err := c.New(b, true)
	require.NoError(t, err)
	assert.True(t, aliased)
	b[len(b)-1] = 'X' // the value sees the buffer it aliases
	assert.Equal(t, "payloaX", string(v.(valueBlob).Data))

	v, aliased, err = c.New(b, false)
	require.NoError(t, err)
	assert.False(t, aliased)
	b[len(b)-1] = 'Y'
	assert.Equal(t, "payloaX", string(v.(valueBlob).Data))
}

// Input the plan refuses (a repeated key) is still decoded, by
// msgpack.Unmarshal, into a clean value.
func TestUnmarshalFallsBack(t *testing.T) {
	type pair struct{ A, B int }
	// {"A": 1, "A": 2}
	in := []byte{0x82, 0xa1, 'A', 0x01, 0xa1, 'A', 0x02}
	var want pair
	require.NoError(t, msgpack.Unmarshal(in, &want))
	got, _, err := Of(reflect.TypeFor[pair]()).New(in, false)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, _, err = Of(reflect.TypeFor[pair]()).New([]byte{0x92, 0xa1}, false)
	assert.Error(t, err)
}
