package core

import (
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
