package core

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actormesh/actormesh/internal/testwait"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// NotifyAfter signals once enough messages are queued, not per message.
func TestNotifyAfter(t *testing.T) {
	p, _ := newTestProc(t, nil)
	inst, _, err := p.Instance("client")
	require.NoError(t, err)
	port, rx := OpenPort[int](inst)
	ref := port.Bind()
	signalled := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := rx.NotifyAfter(3)
	require.NoError(t, ref.Send(inst, 1))
	require.NoError(t, ref.Send(inst, 2))
	assert.False(t, signalled(ch), "signalled with 2 of 3 queued")
	require.NoError(t, ref.Send(inst, 3))
	assert.True(t, signalled(ch), "not signalled with 3 queued")

	// Asking for no more than is queued signals at once.
	assert.True(t, signalled(rx.NotifyAfter(2)))
	rx.NotifyAfter(1)
	v, ok, err := rx.TryRecv()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, 1, v)
	require.NoError(t, ref.Send(inst, 4))
	assert.True(t, signalled(rx.Notify()), "NotifyAfter(1) signals every message again")
}

// OnDeliver runs its hook after each delivery and on close, until removed.
func TestRawReceiverOnDeliver(t *testing.T) {
	p, _ := newTestProc(t, nil)
	inst, _, err := p.Instance("client")
	require.NoError(t, err)
	id, rx := OpenRawPort(inst, false)
	ref := PortRef[int]{ID: id}
	var calls atomic.Int32
	rx.OnDeliver(func() {
		// The message is queued by the time the hook runs.
		_, ok, _ := rx.TryRecv()
		assert.True(t, ok, "hook ran before the message was queued")
		calls.Add(1)
	})
	require.NoError(t, ref.Send(inst, 1))
	require.NoError(t, ref.Send(inst, 2))
	assert.Equal(t, int32(2), calls.Load())
	rx.OnDeliver(nil)
	require.NoError(t, ref.Send(inst, 3))
	assert.Equal(t, int32(2), calls.Load(), "hook ran after removal")
	closed := make(chan struct{})
	rx.OnDeliver(func() { close(closed) })
	rx.Close()
	select {
	case <-closed:
	default:
		t.Fatal("hook did not run on close")
	}
}

// A bounded queue drops its oldest items, counting them, and its backing
// array stays near the bound however many items pass through.
func TestBoundedQueueDropsOldest(t *testing.T) {
	q := newQueue[int]()
	q.limit = 3
	var drops []int
	q.onDrop = func(n int) { drops = append(drops, n) }
	for i := range 100 {
		require.True(t, q.push(i))
	}
	for want := 97; want < 100; want++ {
		v, ok, err := q.tryPop()
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, want, v)
	}
	_, ok, _ := q.tryPop()
	require.False(t, ok)
	require.Len(t, drops, 97)
	require.Equal(t, 97, drops[96])
	require.LessOrEqual(t, cap(q.items), 16, "the backing array")
}

// A client instance's undeliverables are such a queue.
func TestUndeliverablesAreBounded(t *testing.T) {
	p, _ := newTestProc(t, nil)
	inst, _, err := p.Instance("c")
	require.NoError(t, err)
	require.Equal(t, maxUndeliverables, inst.Undeliverables().q.limit)
}

// Closing a port wakes every goroutine waiting on it, not just one.
func TestCloseWakesEveryWaiter(t *testing.T) {
	p, _ := newTestProc(t, nil)
	inst, _, err := p.Instance("client")
	require.NoError(t, err)
	_, rx := OpenPort[int](inst)
	_, acc := OpenAccumPort(inst, Sum[int]())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 4)
	var waiting sync.WaitGroup
	for range 2 {
		waiting.Add(2)
		go func() { waiting.Done(); _, err := rx.Recv(ctx); errs <- err }()
		go func() { waiting.Done(); _, _, err := acc.Wait(ctx, 1); errs <- err }()
	}
	// Started, and nearly always parked by the time of the close; one that
	// is not finds the port closed at once, and the test checks less,
	// never wrongly. (On the old code, two runs in two failed.)
	waiting.Wait()
	rx.Close()
	acc.Close()
	for range 4 {
		require.ErrorIs(t, testwait.Recv(t, errs, 0, "a waiter's end"), ErrPortClosed)
	}
}
