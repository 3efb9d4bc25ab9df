package transport

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A receiver that stops taking messages makes Post wait once the window
// of unacknowledged bytes is full, instead of queueing without bound; it
// resumes when the receiver does, and nothing is lost.
func TestPostWaitsForTheWindow(t *testing.T) {
	const size, n = 1 << 20, 3 * maxQueued / (1 << 20)
	release := make(chan struct{})
	var got atomic.Int32
	srv, err := Serve(Unix.Any(), func(msg []byte) {
		if got.Add(1) == 2 { // the first is the connecting Send below
			<-release
		}
	}, nil)
	snd := dialServer(t, srv, err)
	// Without a connection Posts do not wait (see the next test): connect
	// first.
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	require.NoError(t, snd.Send(ctx, []byte("hello")))

	var posted atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			snd.Post(make([]byte, size))
			posted.Add(1)
		}
	}()
	waitFor(t, func() bool { // a Post waits for room
		snd.mu.Lock()
		defer snd.mu.Unlock()
		return snd.room != nil
	})
	snd.mu.Lock()
	queued := snd.q.bytes
	snd.mu.Unlock()
	assert.LessOrEqual(t, queued, maxQueued, "queued bytes")
	assert.Less(t, int(posted.Load()), n, "every Post returned though nothing was acked")

	close(release)
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("Posts still blocked after the receiver resumed")
	}
	require.NoError(t, snd.Send(ctx, []byte("last")))
	assert.Equal(t, int32(n+2), got.Load())
}

// With no connection there is no window: Posts to an address nobody
// serves return at once, and come back undeliverable.
func TestPostDoesNotWaitWithoutAConnection(t *testing.T) {
	var undelivered atomic.Int32
	snd, err := Dial(Addr{Transport: Unix, Address: "@actormesh-nobody-" + randomName(12)}, &Options{
		DeliveryTimeout: time.Minute,
		OnUndeliverable: func([]byte, error) { undelivered.Add(1) },
	})
	require.NoError(t, err)
	const n = 3 * maxQueued / (1 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			snd.Post(make([]byte, 1<<20))
		}
	}()
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("Post blocked with no connection")
	}
	snd.Close()
	assert.Equal(t, int32(n), undelivered.Load())
}
