package transport

import (
	"math"
	"math/bits"
	"runtime"
	"runtime/debug"
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

// A pools holds free buffers by size class: classes[i] those of capacity
// classSize(i), as pointers to their first byte. Each class is a plain
// locked stack rather than a sync.Pool: a buffer is typically released on
// one goroutine (a connection's reader) and allocated on another, and a
// sync.Pool's per-P caches miss that way; it is also emptied by every GC,
// which a high rate of large allocations makes frequent. Memory does not
// pile up: a class keeps at most maxBytes, and buffers that stayed unused
// through a whole GC cycle are dropped (trimPools).
type pools struct {
	classes  [numClasses]bufPool
	maxBytes int // the free memory one class keeps (at least one buffer)
}

var (
	// framePools recycle message buffers that are released explicitly.
	framePools = pools{maxBytes: 64 << 20}
	// ownedPools recycle buffers a value owned, once the collector finds
	// them unreachable (CopyOwned). A collection hands back at once all
	// the program let go of since the last one, which under a memory
	// limit is most of the limit; those a class had no room for would be
	// garbage for one more cycle, and a heap that much fuller collects
	// that much more often. So a class keeps all of them: no more than
	// the heap held anyway, and dropped after a cycle unused like any.
	ownedPools = pools{maxBytes: maxPooled}
)

type bufPool struct {
	mu   sync.Mutex
	free []*byte
	low  int // the fewest free buffers since the last trim
}

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

func (p *bufPool) put(b *byte, size, maxBytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) > 0 && (len(p.free)+1)*size > maxBytes {
		return
	}
	p.free = append(p.free, b)
	armTrim()
}

// trim drops the buffers nobody took since the last trim: the bottom of
// the stack, which the pool kept in vain for a whole GC cycle. It reports
// whether any buffer is still pooled.
func (p *bufPool) trim() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.low; d > 0 {
		n := copy(p.free, p.free[d:])
		clear(p.free[n:])
		p.free = p.free[:n]
	}
	p.low = len(p.free)
	return len(p.free) > 0
}

// alloc returns a buffer of length n from class classFor(n), pooled or
// fresh (zeroed).
func (ps *pools) alloc(n int) []byte {
	i := classFor(n)
	if p := ps.classes[i].get(); p != nil {
		return unsafe.Slice(p, classSize(i))[:n]
	}
	return make([]byte, n, classSize(i))
}

// release pools b if its capacity is exactly a class's.
func (ps *pools) release(b []byte) {
	c := cap(b)
	if c < minPooled {
		return
	}
	i := classOf(c)
	if i < 0 {
		return
	}
	ps.classes[i].put(unsafe.SliceData(b[:c]), c, ps.maxBytes)
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
	for _, ps := range []*pools{&framePools, &ownedPools} {
		for i := range ps.classes {
			pooled = ps.classes[i].trim() || pooled
		}
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
	return framePools.alloc(n)
}

// CopyOwned returns a copy of b for a value to own outright, such as a
// []byte decoded out of a message: whoever gets it may keep it as long as
// they like. From ownedMin bytes the copy is recycled memory: once nothing
// reaches it any more, the garbage collector gives it back to a pool for
// a later copy instead of freeing it (a finalizer; nobody may set one of
// their own on it). That spares a program which receives large byte
// slices and drops them the page faults of fresh memory and the
// collections its allocation would cause. Not under a memory limit
// (GOMEMLIMIT), though: pooled memory then counts against the limit, and
// makes the collector run more often rather than less.
func CopyOwned(b []byte) []byte {
	if len(b) < ownedMin || len(b) > maxPooled || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		// append to nil, not to a made slice: growslice leaves memory it
		// is about to overwrite unzeroed.
		return append([]byte(nil), b...)
	}
	c := ownedPools.alloc(len(b))
	copy(c, b)
	size := cap(c)
	// Every buffer of ownedPools comes from make (in alloc), so its first
	// byte is the start of its allocation, as a finalizer needs.
	runtime.SetFinalizer(unsafe.SliceData(c), func(p *byte) { ownedPools.release(unsafe.Slice(p, size)) })
	return c
}

// ownedMin is the length from which CopyOwned recycles: below it, the
// finalizer costs more than the collections it spares.
const ownedMin = 64 << 10

// Pooled reports whether b is a buffer ReleaseBuffer would keep.
func Pooled(b []byte) bool { return classOf(cap(b)) >= 0 }

// ReleaseBuffer gives b back for reuse by AllocBuffer. The caller must hold
// the only reference to b's memory: neither b nor any slice sharing its
// memory may be used after the release, by anyone. Releasing a buffer that
// did not come from AllocBuffer is allowed; it is pooled only if its
// capacity is exactly that of a size class, and otherwise left to the
// garbage collector. Releasing nil or a small buffer does nothing. A
// buffer from CopyOwned must not be released: the collector does that.
func ReleaseBuffer(b []byte) { framePools.release(b) }
