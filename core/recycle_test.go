package core

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Big is a message with large parts of every kind the encoder may send by
// reference: a byte slice, a string, and byte arrays (which msgpack copies
// through its scratch buffer when the value is not addressable).
type Big struct {
	Seq  int
	Data []byte
	Text string
	A, B [40 << 10]byte
}

func init() { RegisterMessage[Big]("coretest.Big") }

func makeBig(seq, size int) Big {
	m := Big{Seq: seq, Data: make([]byte, size), Text: strings.Repeat(string(rune('a'+seq%26)), size/2)}
	for i := range m.Data {
		m.Data[i] = byte(seq + i)
	}
	for i := range m.A {
		m.A[i], m.B[i] = byte(seq*3+i), byte(seq*5+i)
	}
	return m
}

func checkBig(t *testing.T, m Big, size int) {
	t.Helper()
	w := makeBig(m.Seq, size)
	require.True(t, bytes.Equal(m.Data, w.Data), "Data of message %d", m.Seq)
	require.Equal(t, w.Text, m.Text, "Text of message %d", m.Seq)
	require.Equal(t, w.A, m.A, "A of message %d", m.Seq)
	require.Equal(t, w.B, m.B, "B of message %d", m.Seq)
}

// keeper keeps every T it gets and gives them back on request, within
// the proc the values themselves, not copies.
type keeper[T any] struct{ got []T }

type giveBack[T any] struct{ Reply PortRef[[]T] }

func init() {
	RegisterMessage[giveBack[Big]]("coretest.giveBack")
	RegisterMessage[giveBack[Note]]("coretest.giveNotes")
}

func (k *keeper[T]) Handle(cx *Context, msg any) error {
	switch m := msg.(type) {
	case T:
		k.got = append(k.got, m)
	case giveBack[T]:
		return m.Reply.Send(cx, k.got)
	}
	return nil
}

// Messages between procs over a socket recycle their buffers: the sender
// once they are acknowledged, the receiver once a message is decoded. What
// actors, typed ports and raw ports keep must stay intact while the
// buffers are reused for later messages: a decoded value that shares
// memory with its frame (an actor's byte slices do) keeps the frame.
func TestRecycledBuffersStayIntact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := twoProcs(t)

	from, _, err := a.Instance("from")
	require.NoError(t, err)
	to, _, err := b.Instance("to")
	require.NoError(t, err)
	k, err := b.Spawn("keeper", &keeper[Big]{})
	require.NoError(t, err)
	typed, typedRx := OpenPort[Big](to)
	rawID, rawRx := OpenRawPort(to, false)

	const n = 30
	sizes := []int{100, 64 << 10, 1 << 20}
	size := func(i int) int { return sizes[i%len(sizes)] }
	for i := range n {
		require.NoError(t, k.Ref().Send(from, makeBig(i, size(i))))
		require.NoError(t, PortRef[Big]{ID: typed.ID()}.Send(from, makeBig(i, size(i))))
		require.NoError(t, from.post(rawID, makeBig(i, size(i)), nil))
	}
	var typedGot []Big
	var raws []RawMessage
	for range n {
		m, err := typedRx.Recv(ctx)
		require.NoError(t, err)
		typedGot = append(typedGot, m)
		r, err := rawRx.Recv(ctx)
		require.NoError(t, err)
		raws = append(raws, r)
	}
	// Churn the pools with more traffic of the same sizes, so that the
	// frames above are reused, and so are the byte slices of the values
	// dropped here (transport.CopyOwned), once collections find them
	// unreachable; then check everything kept.
	for i := range n {
		require.NoError(t, PortRef[Big]{ID: typed.ID()}.Send(from, makeBig(1000+i, size(i))))
		_, err := typedRx.Recv(ctx)
		require.NoError(t, err)
		if i%5 == 4 {
			runtime.GC()
		}
	}
	for i, m := range typedGot {
		require.Equal(t, i, m.Seq)
		checkBig(t, m, size(i))
	}
	for i, r := range raws {
		v, err := DecodeMessage(r.Type, r.Body)
		require.NoError(t, err)
		require.Equal(t, i, v.(Big).Seq)
		checkBig(t, v.(Big), size(i))
	}
	reply, rx := OpenOncePort[[]Big](to)
	require.NoError(t, k.Ref().Send(to, giveBack[Big]{Reply: reply.Bind()}))
	kept, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.Len(t, kept, n)
	for i, m := range kept {
		require.Equal(t, i, m.Seq)
		checkBig(t, m, size(i))
	}
}

// decodeRegistered without alias copies everything out of the body:
// changing the body afterwards (as reusing a recycled frame does) leaves
// the value alone. With alias it says that the value holds on to the body.
func TestDecodeDoesNotAliasBody(t *testing.T) {
	m := makeBig(7, 100<<10)
	env := envelope{sender: ActorID{Name: "x"}, dest: PortID{Actor: ActorID{Name: "y"}}, typeName: "coretest.Big", value: m, local: true}
	w, err := encodeEnvelopeValue(&env, sizeHint(m), nil)
	require.NoError(t, err)
	got, err := decodeEnvelope(w)
	require.NoError(t, err)
	v, aliased, err := decodeRegistered(got.typeName, got.body, false)
	require.NoError(t, err)
	require.False(t, aliased)
	_, aliased, err = decodeRegistered(got.typeName, got.body, true)
	require.NoError(t, err)
	require.True(t, aliased)
	u, err := decodeAs[Big](got)
	require.NoError(t, err)
	clear(w)
	checkBig(t, v.(Big), 100<<10)
	checkBig(t, u, 100<<10)
}

// Sized is a message whose size the test chooses, with its place in a
// sequence.
type Sized struct {
	Seq int
	Pad []byte
}

func init() { RegisterMessage[Sized]("coretest.Sized") }

// seqKeeper records the sequence numbers it gets, and answers with them.
type seqKeeper struct{ seqs []int }

type giveSeqs struct{ Reply PortRef[[]int] }

func init() { RegisterMessage[giveSeqs]("coretest.giveSeqs") }

func (k *seqKeeper) Handle(cx *Context, msg any) error {
	switch m := msg.(type) {
	case Sized:
		k.seqs = append(k.seqs, m.Seq)
	case giveSeqs:
		return m.Reply.Send(cx, k.seqs)
	}
	return nil
}

// Small messages may run on the connection's reader and large ones never
// do (maxClaimed); mixed, from one sender, they still arrive in order.
func TestMixedSizesKeepOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := twoProcs(t)
	k, err := b.Spawn("seqs", &seqKeeper{})
	require.NoError(t, err)
	from, _, err := a.Instance("from")
	require.NoError(t, err)
	const n = 400
	var want []int
	for i := range n {
		size := 8
		if i%3 == 1 {
			size = 2 * maxClaimed
		}
		require.NoError(t, k.Ref().Send(from, Sized{Seq: i, Pad: make([]byte, size)}))
		want = append(want, i)
	}
	reply, rx := OpenOncePort[[]int](from)
	require.NoError(t, k.Ref().Send(from, giveSeqs{Reply: reply.Bind()}))
	got, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, want, got)
}
