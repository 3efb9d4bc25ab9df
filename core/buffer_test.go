package core

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/actormesh/actormesh/internal/codec"
	"github.com/actormesh/actormesh/transport"
)

type (
	// Checked carries a payload whose every byte follows from Seq, so the
	// receiver can tell whether the memory under it was reused too early.
	Checked struct {
		Seq  int
		Data Buffer
	}
	CheckedStats struct{ Reply PortRef[[2]int] }
	// SendChecked asks the sink for N Checked messages of Size bytes.
	SendChecked struct {
		N, Size int
		Reply   PortRef[Checked]
	}
	twoBuffers struct {
		A, B Buffer
		N    int
	}
	binThenStr struct {
		A []byte
		B string
		N int
	}
	strThenBin struct {
		A string
		B []byte
	}
)

func init() {
	RegisterMessage[Checked]("coretest.Checked")
	RegisterMessage[CheckedStats]("coretest.CheckedStats")
	RegisterMessage[SendChecked]("coretest.SendChecked")
}

func patterned(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*7 + i)
	}
	return b
}

func intact(seq int, b []byte) bool {
	for i, c := range b {
		if c != byte(seq*7+i) {
			return false
		}
	}
	return true
}

// check verifies m and the message held before it, then holds m: a held
// Buffer must survive the frames that arrive after it.
func (s *sink) check(m Checked) {
	s.checked++
	if !intact(m.Seq, m.Data.Bytes()) {
		s.bad++
	}
	if s.held.Data.Len() > 0 && !intact(s.held.Seq, s.held.Data.Bytes()) {
		s.bad++
	}
	s.held.Data.Release()
	s.held = m
}

func TestBufferWireFormatIsBytes(t *testing.T) {
	for _, data := range [][]byte{nil, {}, []byte("abc"), make([]byte, 300), make([]byte, 70000)} {
		viaBytes, err := msgpack.Marshal(Blob{Data: data})
		require.NoError(t, err)
		viaBuffer, err := msgpack.Marshal(BufferBlob{Data: NewBuffer(data)})
		require.NoError(t, err)
		fast, err := codec.AppendValue(nil, BufferBlob{Data: NewBuffer(data)})
		require.NoError(t, err)
		assert.Equal(t, viaBytes, viaBuffer, "vmihailenco writes a Buffer as it writes a []byte (len %d)", len(data))
		assert.Equal(t, viaBytes, fast, "so does internal/codec (len %d)", len(data))

		var back BufferBlob
		require.NoError(t, msgpack.Unmarshal(viaBytes, &back))
		assert.Equal(t, len(data), back.Data.Len())
		var fromFast BufferBlob
		require.NoError(t, codec.Of(reflect.TypeFor[BufferBlob]()).Decode(viaBytes, unsafe.Pointer(&fromFast), false))
		assert.Equal(t, len(data), fromFast.Data.Len())
	}
}

// A message with two Buffers keeps its frame until both are released, and
// releasing copies of one Buffer counts once.
func TestBufferLeaseRecyclesFrameAfterLastRelease(t *testing.T) {
	RegisterMessage[twoBuffers]("coretest.twoBuffers")
	mt := messageType(twoBuffers{})
	require.True(t, mt.borrows)
	body, err := codec.AppendValue(nil, twoBuffers{A: NewBuffer(patterned(1, 1000)), B: NewBuffer(patterned(2, 2000)), N: 3})
	require.NoError(t, err)
	frame := transport.AllocBuffer(len(body))
	copy(frame, body)
	require.True(t, transport.Pooled(frame))

	lease := &frameLease{frame: frame}
	lease.refs.Store(1)
	v, err := mt.codec.NewLent(frame[:len(body)], lease)
	require.NoError(t, err)
	lease.drop()
	m := v.(twoBuffers)
	assert.Equal(t, 3, m.N)
	assert.True(t, intact(1, m.A.Bytes()))
	assert.True(t, intact(2, m.B.Bytes()))
	assert.True(t, within(frame, m.A.Bytes()), "A points into the frame, not a copy")
	assert.True(t, within(frame, m.B.Bytes()))

	copyOfA := m.A
	m.A.Release()
	copyOfA.Release()
	assert.Nil(t, m.A.Bytes())
	require.NotNil(t, lease.frame, "B still holds the frame; a second Release of A's copy must not count")
	assert.True(t, intact(2, m.B.Bytes()))
	m.B.Release()
	assert.Nil(t, lease.frame, "the last Release recycles the frame")
}

// A frame outside the pool (a small one) is the message's: its Buffers
// point into it with no loan to give back.
func TestBufferInUnpooledFrame(t *testing.T) {
	body, err := codec.AppendValue(nil, Checked{Seq: 1, Data: NewBuffer(patterned(1, 40))})
	require.NoError(t, err)
	require.False(t, transport.Pooled(body))
	v, err := messageType(Checked{}).decodeLent(body, nil)
	require.NoError(t, err)
	m := v.(Checked)
	assert.True(t, within(body, m.Data.Bytes()))
	assert.Nil(t, m.Data.loan)
	assert.True(t, intact(1, m.Data.Bytes()))
	m.Data.Release()
	assert.Zero(t, m.Data.Len())
}

// A Buffer whose field the sender wrote as a str goes through vmihailenco,
// which copies. A share taken before the plan gave up keeps the frame from
// the pool for good; with none taken, the frame is recycled at once.
func TestBufferFallbackCopies(t *testing.T) {
	RegisterMessage[twoBuffers]("coretest.twoBuffers")
	decode := func(v any) (twoBuffers, []byte, *frameLease) {
		body, err := msgpack.Marshal(v)
		require.NoError(t, err)
		frame := transport.AllocBuffer(len(body))
		copy(frame, body)
		lease := &frameLease{frame: frame}
		lease.refs.Store(1)
		m, err := messageType(twoBuffers{}).codec.NewLent(frame[:len(body)], lease)
		require.NoError(t, err)
		lease.drop()
		return m.(twoBuffers), frame, lease
	}

	m, frame, lease := decode(binThenStr{A: []byte("bin"), B: "str", N: 4})
	assert.Equal(t, "bin", string(m.A.Bytes()))
	assert.Equal(t, "str", string(m.B.Bytes()))
	assert.Equal(t, 4, m.N)
	assert.NotNil(t, lease.frame, "A's share from the failed attempt keeps the frame")
	assert.False(t, within(frame, m.A.Bytes()), "the value does not point into the frame")
	m.A.Release()
	m.B.Release()
	assert.NotNil(t, lease.frame)

	m, _, lease = decode(strThenBin{A: "str", B: []byte("bin")})
	assert.Equal(t, "str", string(m.A.Bytes()))
	assert.Equal(t, "bin", string(m.B.Bytes()))
	assert.Nil(t, lease.frame, "no share was taken: the frame is recycled")
}

// peerSink starts a peer process and returns a client instance in a proc
// of this process and the peer's sink.
func peerSink(t *testing.T) (*Instance, ActorRef) {
	pr, _, client := peerClient(t, nil)
	return client, ActorRef{ID: pr.id.ActorID("sink", 0)}
}

// peerClient starts a peer process, and a proc (on a unix socket, with
// opts) in this one with a client instance; both end with the test.
func peerClient(t *testing.T, opts *ProcOptions) (*peer, *Proc, *Instance) {
	pr := startPeer(t, "unix")
	p, err := DirectProc(transport.Unix.Any(), "local", opts)
	require.NoError(t, err)
	shutdownAtEnd(t, p)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	return pr, p, client
}

// pingedRec returns the peer's recorder once a round trip to it worked.
func pingedRec(t *testing.T, pr *peer, client *Instance) ActorRef {
	rec := ActorRef{ID: pr.id.ActorID("rec", 0)}
	port, rx := OpenPort[int](client)
	require.NoError(t, rec.Send(client, Ping{N: 1, Reply: port.Bind()}))
	_, err := rx.Recv(testCtx(t))
	require.NoError(t, err)
	return rec
}

// localClient returns a proc on a local address, with a client instance;
// both end with the test.
func localClient(t *testing.T) (*Proc, *Instance) {
	p, err := DirectProc(transport.Local.Any(), "local", nil)
	require.NoError(t, err)
	shutdownAtEnd(t, p)
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	return p, client
}

// Buffers between two OS processes: the peer's sink checks every payload
// and the one it still holds while later frames arrive, over a stream
// long enough for the pool to recycle frames many times.
func TestBufferAcrossProcesses(t *testing.T) {
	ctx := testCtx(t)
	client, sinkRef := peerSink(t)

	const n = 300
	sizes := []int{100, 4 << 10, 300 << 10, 1 << 20}
	for i := range n {
		size := sizes[i%len(sizes)]
		require.NoError(t, sinkRef.Send(client, Checked{Seq: i, Data: NewBuffer(patterned(i, size))}))
	}
	port, rx := OpenOncePort[[2]int](client)
	require.NoError(t, sinkRef.Send(client, CheckedStats{Reply: port.Bind()}))
	stats, err := rx.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, n, stats[0], "messages checked")
	assert.Zero(t, stats[1], "payloads found overwritten")
}

// A reply port takes Buffers in place too: each reply is checked while
// the one before it is still held.
func TestBufferThroughPort(t *testing.T) {
	ctx := testCtx(t)
	client, sinkRef := peerSink(t)

	const n, size = 100, 200 << 10
	port, rx := OpenPort[Checked](client)
	require.NoError(t, sinkRef.Send(client, SendChecked{N: n, Size: size, Reply: port.Bind()}))
	var held Checked
	for i := range n {
		m, err := rx.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, i, m.Seq)
		require.NotNil(t, m.Data.loan, "reply %d was copied, not lent", i)
		require.True(t, intact(i, m.Data.Bytes()), "reply %d", i)
		if i > 0 {
			require.True(t, intact(held.Seq, held.Data.Bytes()), "held reply %d overwritten", held.Seq)
		}
		held.Data.Release()
		held = m
	}
	held.Data.Release()
}

// A Buffer sent within a proc is handed over as it is.
func TestBufferLocal(t *testing.T) {
	p, client := localClient(t)
	h, err := p.SpawnType("sink", "coretest.Sink", nil)
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, h.Ref().Send(client, Checked{Seq: i, Data: NewBuffer(patterned(i, 1000))}))
	}
	port, rx := OpenOncePort[[2]int](client)
	require.NoError(t, h.Ref().Send(client, CheckedStats{Reply: port.Bind()}))
	stats, err := rx.Recv(testCtx(t))
	require.NoError(t, err)
	assert.Equal(t, [2]int{10, 0}, stats)
}

// within reports whether b lies inside frame's memory.
func within(frame, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(frame[:cap(frame)])))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(cap(frame))
}
