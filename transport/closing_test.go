package transport

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/actormesh/actormesh/internal/testwait"
)

// A receiver that closes acks what it delivered (a final ack before its
// close frame). The sender must take that ack even when its own next
// write already fails on the closed connection; otherwise it reports a
// delivered message as undeliverable when it closes in turn.
func TestDeliveredBeforeReceiverClosedIsNotUndeliverable(t *testing.T) {
	for i := range 20 {
		col := newCollector(1)
		srv, err := Serve(Unix.Any(), col.handle, nil)
		if err != nil {
			t.Fatal(err)
		}
		und := make(undeliverables, 1)
		s, err := Dial(srv.Addr(), &Options{OnUndeliverable: und.fn})
		if err != nil {
			t.Fatal(err)
		}
		s.Post(seqMsg(i))
		col.wait(t)
		srv.Close()
		s.Close()
		select {
		case u := <-und:
			t.Fatalf("round %d: delivered message reported undeliverable: %v", i, u.err)
		default:
		}
	}
}

// Close does not wait on a peer that stopped reading: the server's reader,
// blocked writing pongs that peer never reads, gives up within a second,
// although the peer asked for a keepalive timeout of hours.
func TestCloseWithPeerNotReading(t *testing.T) {
	srv, err := Serve(Unix.Any(), func([]byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rawClient(t, srv.Addr(), 3600_000) // keepalive 1h: 3h timeout
	// Pings until the server stops reading them, because its pongs fill
	// the socket: then a write of ours times out.
	pings := bytes.Repeat([]byte{framePing, 0, 0, 0, 0}, 64<<10)
	for {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(pings); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	testwait.Recv(t, closed, testWait, "Server.Close")
}
