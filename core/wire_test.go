package core

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleEnvelope() *envelope {
	p := ProcID{Addr: transport.MustParseAddr("tcp:[::1]:4000"), Name: "p"}
	return &envelope{
		sender:   p.ActorID("client", 0),
		dest:     ProcID{Addr: transport.MustParseAddr("unix:@zz"), Name: "q"}.ActorID("a", 7).Port(1030),
		typeName: "test.Ping",
		headers:  map[string]string{"rank": "3"},
		body:     []byte{0x91, 0x01},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := sampleEnvelope()
	out, err := decodeEnvelope(encodeEnvelope(in, in.body))
	require.NoError(t, err)
	assert.Equal(t, in, out)

	long := sampleEnvelope()
	long.body = make([]byte, 70000)
	long.typeName = string(make([]byte, 300))
	out, err = decodeEnvelope(encodeEnvelope(long, long.body))
	require.NoError(t, err)
	assert.Equal(t, long.body, out.body)
}

func TestEnvelopeRejectsGarbage(t *testing.T) {
	good := encodeEnvelope(sampleEnvelope(), sampleEnvelope().body)
	for i := range good {
		_, err := decodeEnvelope(good[:i])
		assert.Error(t, err, "prefix of %d bytes", i)
	}
	_, err := decodeEnvelope(append(append([]byte{}, good...), 0))
	assert.ErrorContains(t, err, "trailing")
	bad := append([]byte{}, good...)
	bad[1] = 9 // version
	_, err = decodeEnvelope(bad)
	assert.ErrorContains(t, err, "version")
}

// sampleBatch is a batch of three messages, as a sender merges them.
func sampleBatch(tb testing.TB) []byte {
	e := sampleEnvelope()
	e.headers = nil
	e.value, e.local = Record{N: 1}, true
	mt := messageType(e.value)
	e.typeName = mt.name
	key := &batchKey{sender: e.sender, dest: e.dest, mt: mt}
	b, err := encodeEnvelopeValue(e, 8, mt)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		next := *e
		next.value = Record{N: i}
		var ok bool
		if b, ok = key.merge(b, 1<<20, &next); !ok {
			tb.Fatal("merge refused")
		}
	}
	return b
}

func FuzzDecodeEnvelope(f *testing.F) {
	e := sampleEnvelope()
	f.Add(encodeEnvelope(e, e.body))
	f.Add([]byte{0x98, 0x01, 0x00})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(sampleBatch(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		// A batch, or anything else, decodes or fails; it never panics.
		var frame envelope
		_ = frame.decodeFrame(b, func(e *envelope) {
			if len(e.body) > len(b) {
				t.Fatalf("body of %d bytes from a frame of %d", len(e.body), len(b))
			}
		})
		env, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		again, err := decodeEnvelope(encodeEnvelope(env, env.body))
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if again.dest != env.dest || again.sender != env.sender || string(again.body) != string(env.body) {
			t.Fatalf("round trip changed the envelope")
		}
	})
}

// An envelope that claims more headers than its frame can hold is refused
// before memory is reserved for them: an 8 MiB frame claiming 8 million
// headers once cost 640 MB.
func TestHeaderCountBoundedByFrame(t *testing.T) {
	e := sampleEnvelope()
	e.headers = nil
	b := appendEnvelopeHeader(nil, e)
	b = b[:len(b)-1] // the empty map
	const size = 8 << 20
	b = binary.BigEndian.AppendUint32(append(b, 0xdf), size)
	b = append(b, make([]byte, size)...) // every "header" a byte: too short
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := decodeEnvelope(b)
	runtime.ReadMemStats(&after)
	require.Error(t, err)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(size), "bytes allocated to decode it")
}

// An id longer than any valid one is decoded, but not kept in the id
// caches, so a peer cannot pin memory with long names.
func TestLongIDsAreNotInterned(t *testing.T) {
	e := sampleEnvelope()
	long := ProcID{Addr: transport.MustParseAddr("unix:@long"), Name: strings.Repeat("n", 4096)}
	e.sender = long.ActorID("x", 0)
	got, err := decodeEnvelope(encodeEnvelope(e, e.body))
	require.NoError(t, err)
	require.Equal(t, e.sender, got.sender)
	idIntern.RLock()
	defer idIntern.RUnlock()
	for raw := range idIntern.m {
		require.LessOrEqual(t, len(raw), maxCachedIDBytes)
	}
}
