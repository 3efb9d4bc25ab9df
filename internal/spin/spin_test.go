package spin

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilSeesDone(t *testing.T) {
	if runtime.GOMAXPROCS(0) == 1 {
		t.Skip("no spinning with one P")
	}
	var flag atomic.Bool
	go func() { flag.Store(true) }()
	if !Until(10*time.Second, flag.Load) {
		t.Fatal("spin ended before done")
	}
}

func TestUntilGivesUp(t *testing.T) {
	if Until(time.Millisecond, func() bool { return false }) {
		t.Fatal("done reported for a condition that never held")
	}
}

// At most half the Ps spin at once: the others stay free for the
// goroutines the spinners wait for.
func TestUntilBoundsSpinners(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const n = 8
	var spinners, settled atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := 0
			Until(time.Minute, func() bool {
				// A goroutine that may not spin asks once; a spinner
				// asks again and again.
				if calls++; calls == 2 {
					spinners.Add(1)
					settled.Add(1)
				}
				select {
				case <-release:
					return true
				default:
					return false
				}
			})
			if calls < 2 {
				settled.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for settled.Load() < n && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	got := spinners.Load()
	close(release)
	wg.Wait()
	if got != 2 {
		t.Fatalf("%d of %d goroutines spun with 4 Ps, want 2", got, n)
	}
	if spinning.Load() != 0 {
		t.Fatalf("spinner count left at %d", spinning.Load())
	}
}

func TestSingleP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	calls := 0
	if Until(time.Minute, func() bool { calls++; return false }) || calls != 1 {
		t.Fatalf("spun with one P (%d calls)", calls)
	}
}
