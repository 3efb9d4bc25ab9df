package core

import (
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

func FuzzDecodeEnvelope(f *testing.F) {
	e := sampleEnvelope()
	f.Add(encodeEnvelope(e, e.body))
	f.Add([]byte{0x98, 0x01, 0x00})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
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
