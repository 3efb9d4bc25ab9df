package transport

import (
	"testing"
	"time"
)

// appendSeq is a Coalesce merge that appends one 8-byte sequence number.
func appendSeq(i int, cap int) func(last []byte, limit int) ([]byte, bool) {
	return func(last []byte, limit int) ([]byte, bool) {
		if len(last)+8 > min(limit, cap) {
			return last, false
		}
		return append(last, seqMsg(i)...), true
	}
}

// Messages merged into ones the connection has not taken arrive as one
// frame, in order; nothing is merged into a message already written.
func TestCoalesce(t *testing.T) {
	a := Unix.Any()
	gate := make(chan struct{})
	first := make(chan struct{})
	var frames [][]byte
	done := make(chan struct{})
	const n = 200_000
	got := 0
	srv := mustServe(t, a, func(msg []byte) {
		if frames == nil {
			close(first)
			<-gate // hold the reader: the socket fills, the writer backs up
		}
		frames = append(frames, msg)
		if got += len(msg) / 8; got == n {
			close(done)
		}
	}, nil)
	s := mustDial(t, srv.Addr(), nil)
	key := new(int)

	s.PostKeyed(seqMsg(0), key)
	select {
	case <-first:
	case <-time.After(testWait):
		t.Fatal("first message not delivered")
	}
	if s.Coalesce(key, appendSeq(1, 1<<10)) {
		t.Fatal("merged into a message already delivered")
	}
	for i := 1; i < n; i++ {
		if !s.Coalesce(key, appendSeq(i, 1<<10)) {
			s.PostKeyed(seqMsg(i), key)
		}
	}
	if s.Coalesced() == 0 {
		t.Fatal("nothing coalesced although the connection was held up")
	}
	close(gate)
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatalf("got %d of %d messages", got, n)
	}
	next := 0
	for _, f := range frames {
		if len(f)%8 != 0 || len(f) > 1<<10 {
			t.Fatalf("frame of %d bytes", len(f))
		}
		for off := 0; off < len(f); off += 8 {
			if msgSeq(f[off:off+8]) != next {
				t.Fatalf("message %d is seq %d", next, msgSeq(f[off:off+8]))
			}
			next++
		}
	}
	if len(frames) == n {
		t.Fatal("every message travelled alone")
	}
	t.Logf("%d messages in %d frames (%d coalesced)", n, len(frames), s.Coalesced())
}

// A local channel hands each message over at once: nothing to coalesce.
func TestCoalesceLocal(t *testing.T) {
	a := Local.Any()
	col := newCollector(2)
	srv := mustServe(t, a, col.handle, nil)
	s := mustDial(t, srv.Addr(), nil)
	key := new(int)
	s.PostKeyed(seqMsg(0), key)
	if s.Coalesce(key, appendSeq(1, 1<<10)) {
		t.Fatal("coalesced on a local channel")
	}
	s.PostKeyed(seqMsg(1), key)
	checkInOrder(t, col.wait(t), 2)
}

// A message is not merged into one posted in an earlier tick of the
// delivery timeout's clock: it would time out early.
func TestCoalesceWithinOneTick(t *testing.T) {
	a := Addr{Unix, "@actormesh-coalesce-tick-" + time.Now().Format("150405.000000000")}
	s := mustDial(t, a, &Options{DeliveryTimeout: 400 * time.Millisecond})
	key := new(int)
	s.PostKeyed(seqMsg(0), key) // nobody serves a yet: it waits
	if !s.Coalesce(key, appendSeq(1, 1<<10)) {
		t.Fatal("not merged into a message of the same tick")
	}
	s.mu.Lock()
	start := s.epoch
	s.mu.Unlock()
	deadline := time.Now().Add(testWait)
	for {
		s.mu.Lock()
		ticked := s.epoch != start
		s.mu.Unlock()
		if ticked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timeout clock did not tick")
		}
		time.Sleep(time.Millisecond)
	}
	if s.Coalesce(key, appendSeq(2, 1<<10)) {
		t.Fatal("merged into a message of an earlier tick")
	}
	s.PostKeyed(seqMsg(2), key)

	col := newCollector(2)
	mustServe(t, a, col.handle, nil)
	frames := col.wait(t)
	if len(frames) != 2 || len(frames[0]) != 16 || msgSeq(frames[0][8:]) != 1 || msgSeq(frames[1]) != 2 {
		t.Fatalf("frames %x", frames)
	}
}
