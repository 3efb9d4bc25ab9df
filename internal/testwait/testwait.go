// Package testwait bounds the waits of tests: a value that never comes
// fails the test that waited for it, with what it waited for, instead of
// hanging the whole package until its timeout. It imports nothing of the
// project, so that every package's tests can use it.
package testwait

import (
	"testing"
	"time"
)

// Within is how long Recv waits when the caller has no better bound.
const Within = 20 * time.Second

// Recv returns the next value from ch, or fails tb if none comes within
// d (Within when d is 0). what names the value in the failure.
func Recv[T any](tb testing.TB, ch <-chan T, d time.Duration, what string) T {
	tb.Helper()
	if d == 0 {
		d = Within
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-t.C:
		tb.Fatalf("waited %v for %s", d, what)
		panic("unreachable: Fatalf ends the test's goroutine")
	}
}
