package msgp

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// What this package writes, the reflection codec reads, and back.
func TestCompatibleWithReflectionCodec(t *testing.T) {
	for _, u := range []uint64{0, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		var got uint64
		require.NoError(t, msgpack.Unmarshal(AppendUint(nil, u), &got))
		require.Equal(t, u, got)
		b, _ := msgpack.Marshal(u)
		r := Reader{B: b}
		back, err := r.Uint()
		require.NoError(t, err)
		require.Equal(t, u, back)
	}
	for _, v := range []int64{0, 1, -1, -32, -33, 127, 128, math.MinInt32, math.MaxInt32, math.MinInt64, math.MaxInt64} {
		var got int64
		require.NoError(t, msgpack.Unmarshal(AppendInt(nil, v), &got))
		require.Equal(t, v, got)
		b, _ := msgpack.Marshal(v)
		r := Reader{B: b}
		back, err := r.Int()
		require.NoError(t, err)
		require.Equal(t, v, back)
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		var got string
		require.NoError(t, msgpack.Unmarshal(AppendStr(nil, s), &got))
		require.Equal(t, s, got)
		p := bytes.Repeat([]byte{7}, n)
		var gb []byte
		require.NoError(t, msgpack.Unmarshal(AppendBin(nil, p), &gb))
		require.Equal(t, len(p), len(gb))
		r := Reader{B: AppendBin(AppendStr(nil, s), p)}
		rs, err := r.Str()
		require.NoError(t, err)
		require.Equal(t, s, rs)
		rb, err := r.Bin()
		require.NoError(t, err)
		require.Equal(t, p, rb)
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		r := Reader{B: AppendMapLen(AppendArrayLen(nil, n), n)}
		a, err := r.ArrayLen()
		require.NoError(t, err)
		m, err := r.MapLen()
		require.NoError(t, err)
		require.Equal(t, []int{n, n}, []int{a, m})
	}
}

func TestReaderRejectsTruncatedInput(t *testing.T) {
	full := AppendBin(AppendStr(AppendUint(AppendArrayLen(nil, 3), 1<<40), "hello"), []byte("world"))
	for i := range full {
		r := Reader{B: full[:i]}
		_, err := r.ArrayLen()
		if err == nil {
			_, err = r.Uint()
		}
		if err == nil {
			_, err = r.Str()
		}
		if err == nil {
			_, err = r.Bin()
		}
		require.Error(t, err, "prefix of %d bytes", i)
	}
}
