package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/require"
)

// Every Call subscribes to its mesh's failures and closes the receiver
// when it returns; the closed subscriptions must not pile up, nor be sent
// failures that could only come back undeliverable.
func TestClosedSubscriptionsArePruned(t *testing.T) {
	p, err := core.DirectProc(transport.Local.Any(), "health", nil)
	require.NoError(t, err)
	defer p.Shutdown(context.Background())
	inst, _, err := p.Instance("owner")
	require.NoError(t, err)

	h := newHealth()
	ah, err := h.addActorMesh("m", inst)
	require.NoError(t, err)
	for range 100 {
		h.subscribe(ah, inst, nil).Close()
	}
	live := h.subscribe(ah, inst, nil)
	defer live.Close()
	require.Len(t, ah.subs, 1, "closed subscriptions are dropped when the next one comes")

	closed := h.subscribe(ah, inst, nil)
	closed.Close()
	h.procDied(0, ProcInfo{Name: "p_0", Status: ProcKilled, Signal: 9})
	require.Len(t, ah.subs, 1, "and when a failure is published")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := live.Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{0}, f.Ranks)
}

// A running actor mesh's name is refused to a second spawn, whose handle
// would split the mesh's supervision; once stopped, the name is free.
func TestActorMeshNameInUse(t *testing.T) {
	h := newHealth()
	first, err := h.addActorMesh("m", nil)
	require.NoError(t, err)
	_, err = h.addActorMesh("m", nil)
	require.ErrorContains(t, err, `an actor mesh "m" is running`)
	require.Same(t, first, h.actors["m"], "the refused spawn replaced the record")

	h.markStopped(first)
	again, err := h.addActorMesh("m", nil)
	require.NoError(t, err)
	require.Same(t, again, h.actors["m"])
}
