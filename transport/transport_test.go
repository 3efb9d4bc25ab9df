package transport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestFIFODelivery(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10000
			col := newCollector(n)
			srv := mustServe(t, tc.addr(t), col.handle, nil)
			s := mustDial(t, srv.Addr(), nil)
			for i := range n - 1 {
				s.Post(seqMsg(i))
			}
			if err := s.Send(ctxWait(t), seqMsg(n-1)); err != nil {
				t.Fatal(err)
			}
			// Send returned after the handler ran for the last message,
			// so (FIFO) all of them are there.
			if got := col.count(); got != n {
				t.Fatalf("after Send: %d messages delivered, want %d", got, n)
			}
			checkInOrder(t, col.wait(t), n)
			s.Close()
			srv.Close()
			goleak.VerifyNone(t)
		})
	}
}

func TestConcurrentSenders(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			const senders, per = 20, 500
			var mu sync.Mutex
			got := map[int][]int{}
			done := make(chan struct{})
			total := 0
			srv := mustServe(t, tc.addr(t), func(msg []byte) {
				var who, i int
				fmt.Sscanf(string(msg), "%d/%d", &who, &i)
				mu.Lock()
				got[who] = append(got[who], i)
				total++
				if total == senders*per {
					close(done)
				}
				mu.Unlock()
			}, nil)
			var wg sync.WaitGroup
			for w := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := Dial(srv.Addr(), nil)
					if err != nil {
						t.Error(err)
						return
					}
					defer s.Close()
					for i := range per {
						s.Post(fmt.Appendf(nil, "%d/%d", w, i))
					}
					if err := s.Send(ctxWait(t), []byte("-1/-1")); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			for w := range senders {
				seq := got[w]
				if len(seq) != per {
					t.Fatalf("sender %d: %d messages, want %d", w, len(seq), per)
				}
				for i, v := range seq {
					if v != i {
						t.Fatalf("sender %d: message %d is %d", w, i, v)
					}
				}
			}
		})
	}
}

func TestPostBeforeServe(t *testing.T) {
	path := tempSocket(t)
	a := Addr{Unix, path}
	s := mustDial(t, a, &Options{maxBackoff: 20 * time.Millisecond})
	for i := range 10 {
		s.Post(seqMsg(i))
	}
	col := newCollector(10)
	mustServe(t, a, col.handle, nil)
	checkInOrder(t, col.wait(t), 10)
}

func TestOversizedMessage(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			col := newCollector(2)
			srv := mustServe(t, tc.addr(t), col.handle, &Options{MaxFrameSize: 1024})
			und := make(undeliverables, 10)
			s := mustDial(t, srv.Addr(), &Options{MaxFrameSize: 1024, OnUndeliverable: und.fn})
			s.Post([]byte("first"))
			big := bytes.Repeat([]byte("x"), 1025)
			s.Post(big)
			if err := s.Send(ctxWait(t), big); !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("Send(oversized) = %v, want ErrFrameTooLarge", err)
			}
			if err := s.Send(ctxWait(t), []byte("last")); err != nil {
				t.Fatal(err)
			}
			u := und.next(t)
			var ue *UndeliverableError
			if !errors.As(u.err, &ue) || !errors.Is(u.err, ErrFrameTooLarge) || !bytes.Equal(u.msg, big) {
				t.Fatalf("undeliverable = %v", u.err)
			}
			msgs := col.wait(t)
			if string(msgs[0]) != "first" || string(msgs[1]) != "last" {
				t.Fatalf("got %q", msgs)
			}
		})
	}
}

func TestSendAfterClose(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv := mustServe(t, tc.addr(t), func([]byte) {}, nil)
			und := make(undeliverables, 10)
			s := mustDial(t, srv.Addr(), &Options{OnUndeliverable: und.fn})
			if err := s.Send(ctxWait(t), []byte("a")); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s.Close()
			if err := s.Send(ctxWait(t), []byte("b")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Close = %v", err)
			}
			s.Post([]byte("c"))
			if u := und.next(t); !errors.Is(u.err, ErrClosed) || string(u.msg) != "c" {
				t.Fatalf("undeliverable %q: %v", u.msg, u.err)
			}
		})
	}
}

func TestUnixPathRemovedOnClose(t *testing.T) {
	path := tempSocket(t)
	srv, err := Serve(Addr{Unix, path}, func([]byte) {}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file still there: %v", err)
	}
	// Serving again on the path works.
	mustServe(t, Addr{Unix, path}, func([]byte) {}, nil)
}

func TestLocalPorts(t *testing.T) {
	a := mustServe(t, Local.Any(), func([]byte) {}, nil)
	if _, err := Serve(a.Addr(), func([]byte) {}, nil); err == nil {
		t.Fatal("serving a taken local port succeeded")
	}
	if _, err := Dial(Addr{Local, "999999999"}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial(unserved local) = %v", err)
	}
	und := make(undeliverables, 1)
	s := mustDial(t, a.Addr(), &Options{OnUndeliverable: und.fn})
	a.Close()
	s.Post([]byte("x"))
	if u := und.next(t); !errors.Is(u.err, ErrClosed) {
		t.Fatalf("Post after server Close: %v", u.err)
	}
}
