package codec

import (
	"encoding/binary"
	"math"

	"github.com/actormesh/actormesh/internal/msgp"
)

// Integers are written as vmihailenco's Encoder (with UseCompactInts)
// writes them: non-negative signed values in the unsigned forms, negative
// ones in the shortest signed form, int8 included. internal/msgp's
// AppendInt skips int8/int16, so it cannot be used here; its other
// writers match vmihailenco and are used as they are.

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return msgp.AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(b, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendFloat32(b []byte, f float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(f))
}

func appendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}
