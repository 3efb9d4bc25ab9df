package testwait

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestRecvReturnsWhatArrives(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if got := Recv(t, ch, 0, "seven"); got != 7 {
		t.Fatalf("Recv = %d, want 7", got)
	}
}

// A value that never comes fails the waiting test, naming what it was.
func TestRecvFailsWhenNothingComes(t *testing.T) {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine it is called on
		defer close(done)
		Recv(rec, make(chan int), 10*time.Millisecond, "a reply")
	}()
	<-done
	if rec.msg != "waited 10ms for a reply" {
		t.Fatalf("failure = %q", rec.msg)
	}
}

type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
