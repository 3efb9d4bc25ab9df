package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// A keepalive ping never lands inside a frame that a Post writes inline.
// Over TCP a large inline write is often partial, and its rest is written
// by the writer goroutine; with a ping due at every tick, a ping written
// meanwhile would split the frame: the handler would get a corrupted
// message and the server would reject the session.
func TestKeepaliveAmidInlineWrites(t *testing.T) {
	const size, n = 12 << 10, 20000
	var got, bad atomic.Int64
	srv, err := Serve(TCP.AnyOn("127.0.0.1"), func(m []byte) {
		got.Add(1)
		if len(m) != size || !bytes.Equal(m[8:], bytes.Repeat(m[8:9], size-8)) || m[8] != byte(binary.BigEndian.Uint64(m)%251) {
			bad.Add(1)
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	s, err := Dial(srv.Addr(), &Options{KeepaliveInterval: 1e6}) // a ping due every millisecond
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := func(i uint64) []byte {
		m := bytes.Repeat([]byte{byte(i % 251)}, size)
		binary.BigEndian.PutUint64(m, i)
		return m
	}
	for i := range uint64(n) {
		s.Post(msg(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	// Acked once every message before it was delivered, in one session.
	if err := s.Send(ctx, msg(n)); err != nil {
		t.Fatalf("the last message: %v", err)
	}
	if got.Load() != n+1 || bad.Load() != 0 {
		t.Fatalf("delivered %d of %d messages, %d corrupted", got.Load(), n+1, bad.Load())
	}
}
