package transport

import "testing"

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
