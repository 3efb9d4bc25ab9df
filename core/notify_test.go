package core

import (
	"sync/atomic"
	"testing"

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
