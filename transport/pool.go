package transport

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Message buffers are recycled through size-classed pools: a
// megabyte-sized message allocated afresh costs page faults and GC work
// that dwarf copying it, and a stream of small ones is garbage that makes
// the collector run all the time. Classes start at minPooled and have
// four steps per power of two (so at most 25% of a buffer is slack), up
// to maxPooled.
const (
	minPooledShift = 8
	minPooled      = 1 << minPooledShift // 256 B
	maxPooledShift = 30
	maxPooled      = 1 << maxPooledShift // 1 GiB, the frame size ceiling
	classSteps     = 4
	numClasses     = (maxPooledShift-minPooledShift)*classSteps + 1
)

// bufPools[i] holds free buffers of capacity classSize(i), as pointers to
// their first byte. It is a plain locked stack rather than a sync.Pool: a
// buffer is typically released on one goroutine (a connection's reader)
// and allocated on another, and a sync.Pool's per-P caches miss that way;
// it is also emptied by every GC, which a high rate of large allocations
// makes frequent. Memory does not pile up: a class keeps at most
// maxPoolBytes, and buffers that stayed unused through a whole GC cycle
// are dropped (trimPools).
var bufPools [numClasses]bufPool

type bufPool struct {
	mu   sync.Mutex
	free []*byte
	low  int // the fewest free buffers since the last trim
}

// maxPoolBytes bounds the free memory one class keeps (at least one buffer).
const maxPoolBytes = 64 << 20

func (p *bufPool) get() *byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 {
		return nil
	}
	b := p.free[n-1]
	p.free[n-1] = nil
	p.free = p.free[:n-1]
	p.low = min(p.low, n-1)
	return b
}

func (p *bufPool) put(b *byte, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) > 0 && (len(p.free)+1)*size > maxPoolBytes {
		return
	}
	p.free = append(p.free, b)
	armTrim()
}

// trim drops the buffers nobody took since the last trim: the bottom of
// the stack, which the pool kept in vain for a whole GC cycle.
func (p *bufPool) trim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.low; d > 0 {
		n := copy(p.free, p.free[d:])
		clear(p.free[n:])
		p.free = p.free[:n]
	}
	p.low = len(p.free)
}

var trimArmed atomic.Bool

// armTrim makes the next garbage collection trim the pools, by way of the
// cleanup of an object allocated for that purpose; the trim re-arms itself
// while any buffer is pooled.
func armTrim() {
	if trimArmed.CompareAndSwap(false, true) {
		runtime.AddCleanup(new(trimSentinel), trimPools, 0)
	}
}

type trimSentinel struct{ _ [16]byte } // not tiny-allocated, so it dies alone

func trimPools(int) {
	pooled := false
	for i := range bufPools {
		p := &bufPools[i]
		p.trim()
		p.mu.Lock()
		pooled = pooled || len(p.free) > 0
		p.mu.Unlock()
	}
	trimArmed.Store(false)
	if pooled {
		armTrim()
	}
}

// classSize is the capacity of class i.
func classSize(i int) int {
	e, q := minPooledShift+i/classSteps, i%classSteps
	return 1<<e + q<<(e-2)
}

// classFor returns the smallest class holding n bytes (minPooled < n ≤ maxPooled).
func classFor(n int) int {
	if n <= minPooled {
		return 0
	}
	e := bits.Len(uint(n-1)) - 1 // 1<<e < n ≤ 1<<(e+1)
	step := 1 << (e - 2)
	q := (n - 1<<e + step - 1) / step // 1..4
	return (e-minPooledShift)*classSteps + q
}

// classOf returns the class whose size is exactly c, or -1.
func classOf(c int) int {
	if c < minPooled || c > maxPooled {
		return -1
	}
	i := classFor(c)
	if classSize(i) != c {
		return -1
	}
	return i
}

// AllocBuffer returns a buffer of length n. One of 256 bytes or more comes
// from a pool of recycled buffers, so its contents are arbitrary and its
// capacity may exceed n; a smaller one is freshly allocated (zeroed). Give
// pooled buffers back with ReleaseBuffer once nothing uses them.
func AllocBuffer(n int) []byte {
	if n < minPooled || n > maxPooled {
		return make([]byte, n)
	}
	i := classFor(n)
	if p := bufPools[i].get(); p != nil {
		return unsafe.Slice(p, classSize(i))[:n]
	}
	return make([]byte, n, classSize(i))
}

// Pooled reports whether b is a buffer ReleaseBuffer would keep.
func Pooled(b []byte) bool { return classOf(cap(b)) >= 0 }

// ReleaseBuffer gives b back for reuse by AllocBuffer. The caller must hold
// the only reference to b's memory: neither b nor any slice sharing its
// memory may be used after the release, by anyone. Releasing a buffer that
// did not come from AllocBuffer is allowed; it is pooled only if its
// capacity is exactly that of a size class, and otherwise left to the
// garbage collector. Releasing nil or a small buffer does nothing.

func ReleaseBuffer(b []byte) {
	c := cap(b)
	if c < minPooled {
		return
	}
	i := classOf(c)
	if i < 0 {
		return
	}
	bufPools[i].put(unsafe.SliceData(b[:c]), c)
}
