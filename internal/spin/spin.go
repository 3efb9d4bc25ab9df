// Package spin is the bounded busy-wait that blocking receives do before
// they sleep, in the Go SDK and in the C ABI alike.
//
// A reply from a nearby process often comes sooner than a parked
// goroutine runs again: readying it on an otherwise idle runtime also
// wakes a second thread to look for work, which costs more than the rest
// of a round trip. So a receive first spins for a while. A spinning
// goroutine keeps its P, though, and is not preempted for milliseconds:
// as the runtime does with its own spinning threads, at most half the Ps
// (at least one) spin at a time, and none with a single P, where the
// sender could not even run.
package spin

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Default is how long a receive spins unless ACTORMESH_RECV_SPIN_US says
// otherwise (0: not at all).
const Default = 100 * time.Microsecond

// Duration is the spin's length in this process.
var Duration = sync.OnceValue(func() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("ACTORMESH_RECV_SPIN_US")); err == nil && v >= 0 && v <= 1_000_000 {
		return time.Duration(v) * time.Microsecond
	}
	return Default
})

var spinning atomic.Int32

// Until spins until done reports true or d has passed, and reports
// whether done did. It returns false at once when d is zero, when the
// runtime has one P, or when enough goroutines spin already.
func Until(d time.Duration, done func() bool) bool {
	if d <= 0 {
		return done()
	}
	procs := runtime.GOMAXPROCS(0)
	if procs == 1 {
		return done()
	}
	if spinning.Add(1) > int32(max(1, procs/2)) {
		spinning.Add(-1)
		return done()
	}
	defer spinning.Add(-1)
	start := time.Now()
	for i := 1; ; i++ {
		if done() {
			return true
		}
		if i%64 == 0 && time.Since(start) > d {
			return false
		}
	}
}
