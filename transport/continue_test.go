package transport

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockUntil is a continuation that waits for a later message of the same
// connection: run on the reader (as alwaysBusy makes it) without a
// takeover of the reading, it would deadlock.
type blockUntil struct {
	release chan struct{}
	done    chan struct{}
}

func (b blockUntil) Continue() {
	select {
	case <-b.release:
	case <-time.After(testWait):
	}
	close(b.done)
}

func TestContinuationTakeover(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			first := blockUntil{release: release, done: make(chan struct{})}
			var mu sync.Mutex
			var got []string
			srv, err := ServeContinuing(tc.addr(t), func(msg []byte) Continuation {
				mu.Lock()
				got = append(got, string(msg))
				mu.Unlock()
				switch string(msg) {
				case "block":
					return first
				case "release":
					close(release)
				}
				return nil
			}, &Options{alwaysBusy: true})
			snd := dialServer(t, srv, err)

			ctx, cancel := context.WithTimeout(context.Background(), testWait)
			defer cancel()
			snd.Post([]byte("block"))
			for i := range 10 {
				snd.Post(fmt.Appendf(nil, "m%d", i))
			}
			// Send returns once "release" was handled, which the blocked
			// continuation needs to finish.
			require.NoError(t, snd.Send(ctx, []byte("release")))
			select {
			case <-first.done:
			case <-ctx.Done():
				t.Fatal("the blocked continuation was never released")
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"block"}
			for i := range 10 {
				want = append(want, fmt.Sprintf("m%d", i))
			}
			assert.Equal(t, append(want, "release"), got, "handler order")
		})
	}
}

type countDown struct {
	wg *sync.WaitGroup
}

func (c countDown) Continue() { c.wg.Done() }

func TestEveryContinuationRuns(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10_000
			var wg sync.WaitGroup
			wg.Add(n)
			var mu sync.Mutex
			var order []byte
			srv, err := ServeContinuing(tc.addr(t), func(msg []byte) Continuation {
				mu.Lock()
				order = append(order, msg[0])
				mu.Unlock()
				return countDown{&wg}
			}, nil)
			snd := dialServer(t, srv, err)
			for i := range n {
				snd.Post([]byte{byte(i)})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(testWait):
				t.Fatal("continuations did not all run")
			}
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, order, n)
			for i := range n {
				require.Equal(t, byte(i), order[i], "message %d", i)
			}
		})
	}
}

type signal chan struct{}

func (s signal) Continue() { close(s) }

// Continuations collected behind one that blocks are not held up by it:
// the takeover dispatches them.
func TestPendingContinuationsOutliveABlockedOne(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	blocked := blockUntil{release: release, done: make(chan struct{})}
	after := []signal{make(signal), make(signal), make(signal)}
	srv, err := ServeContinuing(Unix.Any(), func(msg []byte) Continuation {
		if msg[0] == 'b' {
			return blocked
		}
		return after[msg[0]-'0']
	}, &Options{alwaysBusy: true})
	snd := dialServer(t, srv, err)
	snd.Post([]byte("b"))
	for i := range after {
		snd.Post([]byte{byte('0' + i)})
	}
	for i, s := range after {
		select {
		case <-s:
		case <-time.After(testWait):
			t.Fatalf("continuation %d never ran while another blocked", i)
		}
	}
}

// dialServer checks Serve's error and returns a sender to srv; both are
// closed when the test ends.
func dialServer(t *testing.T, srv *Server, err error) *Sender {
	t.Helper()
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	snd, err := Dial(srv.Addr(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { snd.Close() })
	return snd
}

// Close does not wait for a continuation that blocks: the connection ends
// on a fresh reader.
func TestCloseDoesNotWaitForABlockedContinuation(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	blocked := blockUntil{release: release, done: make(chan struct{})}
	started := make(chan struct{})
	srv, err := ServeContinuing(Unix.Any(), func(msg []byte) Continuation {
		close(started)
		return blocked
	}, &Options{alwaysBusy: true})
	snd := dialServer(t, srv, err) // its second Close does nothing
	snd.Post([]byte("x"))
	select {
	case <-started:
	case <-time.After(testWait):
		t.Fatal("the message never arrived")
	}
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(testWait):
		t.Fatal("Close waited for a blocked continuation")
	}
}
