package core

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/require"
)

// An inline handler makes a client instance addressable at its actor port
// from this proc (by value) and from another proc (encoded), in order, and
// an error it returns comes back to the sender as an undeliverable.
func TestInlineHandler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := twoProcs(t)

	fwd, _, err := a.Instance("fwd")
	require.NoError(t, err)
	port, rx := OpenPort[int](fwd)
	got := PortRef[int]{ID: port.ID()}
	require.NoError(t, BindInlineHandler(fwd, ActorPort, func(m InlineMessage) error {
		var n int
		if m.Value != nil {
			n = m.Value.(Record).N
		} else {
			v, err := DecodeMessage(m.Type, m.Body)
			if err != nil {
				return err
			}
			n = v.(Record).N
		}
		if n < 0 {
			return errors.New("negative")
		}
		return got.Send(fwd, n)
	}))
	require.Error(t, BindInlineHandler(fwd, port.ID().Index, func(InlineMessage) error { return nil }), "an open port")

	local, _, err := a.Instance("local")
	require.NoError(t, err)
	remote, _, err := b.Instance("remote")
	require.NoError(t, err)
	ref := ActorRef{ID: fwd.ID()}
	for i := range 10 {
		require.NoError(t, ref.Send(local, Record{N: i}))
		require.NoError(t, ref.Send(remote, Record{N: 100 + i}))
	}
	var fromLocal, fromRemote []int
	for range 20 {
		n, err := rx.Recv(ctx)
		require.NoError(t, err)
		if n < 100 {
			fromLocal = append(fromLocal, n)
		} else {
			fromRemote = append(fromRemote, n-100)
		}
	}
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, fromLocal)
	require.Equal(t, fromLocal, fromRemote)

	require.NoError(t, ref.Send(remote, Record{N: -1}))
	u, err := remote.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	require.Contains(t, u.Reason, "negative")

	// Undeliverables can be handled inline too.
	unds := make(chan Undeliverable, 1)
	require.NoError(t, BindInlineHandler(fwd, UndeliverablePort, func(m InlineMessage) error {
		unds <- m.Value.(Undeliverable)
		return nil
	}))
	require.NoError(t, ActorRef{ID: a.ID().ActorID("nobody", 0)}.Send(fwd, Record{N: 1}))
	select {
	case u := <-unds:
		require.Equal(t, "nobody", u.Dest.Actor.Name)
	case <-ctx.Done():
		t.Fatal("no undeliverable")
	}
}

// Note is a small message with content that tells whether it is intact.
type Note struct {
	Seq  int
	Text string
	Data []byte
}

func init() { RegisterMessage[Note]("coretest.Note") }

func makeNote(seq, size int) Note {
	n := Note{Seq: seq, Text: strings.Repeat(string(rune('a'+seq%26)), size), Data: make([]byte, size)}
	for i := range n.Data {
		n.Data[i] = byte(seq*7 + i)
	}
	return n
}

// A handler's Relay hands the buffer a message arrived in to the local
// actor it relays to, which recycles it once decoded. What the actor keeps
// must stay intact while later messages reuse those buffers, and a handler
// that fails after relaying gets the message back undeliverable without
// the body, which it no longer owns.
func TestRelayedBuffersStayIntact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := twoProcs(t)
	k, err := b.Spawn("keeper", &keeper[Note]{})
	require.NoError(t, err)
	fwd, _, err := b.Instance("fwd")
	require.NoError(t, err)
	require.NoError(t, BindInlineHandler(fwd, ActorPort, func(m InlineMessage) error {
		if err := m.Relay(fwd, k.Ref().ID.Port(ActorPort), m.Type, m.Body, nil); err != nil {
			return err
		}
		if m.Headers["fail"] != "" {
			return errors.New("failed after relaying")
		}
		return nil
	}))
	from, _, err := a.Instance("from")
	require.NoError(t, err)
	dest := fwd.ID().Port(ActorPort)

	const n = 300
	sizes := []int{1, 100, 300, 4 << 10} // all relayed on the reader (maxClaimed)
	size := func(i int) int { return sizes[i%len(sizes)] }
	for i := range n {
		require.NoError(t, from.post(dest, makeNote(i, size(i)), nil))
		if i%50 == 49 {
			runtime.GC()
		}
	}
	require.NoError(t, from.post(dest, makeNote(n, size(n)), map[string]string{"fail": "1"}))
	u, err := from.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	require.Contains(t, u.Reason, "failed after relaying")
	require.Zero(t, len(u.Body), "the body went on with the relay")

	reply, rx := OpenOncePort[[]Note](from)
	require.NoError(t, k.Ref().Send(from, giveBack[Note]{Reply: reply.Bind()}))
	kept, err := rx.Recv(ctx)
	require.NoError(t, err)
	require.Len(t, kept, n+1)
	for i, m := range kept {
		want := makeNote(i, size(i))
		require.Equal(t, want.Seq, m.Seq)
		require.True(t, want.Text == m.Text && bytes.Equal(want.Data, m.Data), "note %d intact", i)
	}
}

// An inline handler that panics after its Relay claimed an idle actor
// does not leave that actor claimed and never running: the relayed
// message is handled, and so are later ones.
func TestInlinePanicAfterRelay(t *testing.T) {
	a, err := DirectProc(transport.Unix.Any(), "a", nil)
	require.NoError(t, err)
	shutdownAtEnd(t, a)
	b, err := DirectProc(transport.Unix.Any(), "b", nil)
	require.NoError(t, err)
	shutdownAtEnd(t, b)
	rec, err := b.Spawn("rec", &recorder{})
	require.NoError(t, err)
	fwd, _, err := b.Instance("fwd")
	require.NoError(t, err)
	require.NoError(t, BindInlineHandler(fwd, ActorPort, func(m InlineMessage) error {
		if err := m.Relay(fwd, rec.ID().Port(ActorPort), m.Type, m.Body, nil); err != nil {
			return err
		}
		panic("a bug in the inline handler, after its relay")
	}))
	client, _, err := a.Instance("c")
	require.NoError(t, err)
	require.NoError(t, ActorRef{ID: fwd.ID()}.Send(client, Record{N: 1}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port, rx := OpenPort[[]int](client)
	require.NoError(t, rec.Ref().Send(client, Report{Reply: port.Bind()}))
	got, err := rx.Recv(ctx)
	require.NoError(t, err, "the actor the panicking handler relayed to")
	require.Equal(t, []int{1}, got)
}
