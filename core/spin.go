package core

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// A receive that would block spins for a while first, as mesh_port_recv
// does in C: a reply from a nearby process often comes sooner than a
// parked goroutine is running again, because readying it on an otherwise
// idle runtime also wakes a second thread to look for work, a wake-up
// that costs more than the rest of the round trip. Spinning is pointless
// with a single P (the sender could not run) and is skipped there.

// defaultRecvSpin is the spin's length unless ACTORMESH_RECV_SPIN_US says
// otherwise (0: park at once); the C ABI reads the same variable.
const defaultRecvSpin = 100 * time.Microsecond

var recvSpin = sync.OnceValue(func() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("ACTORMESH_RECV_SPIN_US")); err == nil && v >= 0 && v <= 1_000_000 {
		return time.Duration(v) * time.Microsecond
	}
	return defaultRecvSpin
})

// spinFor spins until ready is signalled or the spin's time is up.
func spinFor(ready chan struct{}) {
	spin := recvSpin()
	if spin == 0 || runtime.GOMAXPROCS(0) == 1 {
		return
	}
	start := time.Now()
	for i := 1; len(ready) == 0; i++ {
		if i%64 == 0 && time.Since(start) > spin {
			return
		}
	}
}
