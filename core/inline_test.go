package core

import (
	"context"
	"errors"
	"testing"
	"time"

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
