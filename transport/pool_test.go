package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

func TestBufferClasses(t *testing.T) {
	for i := range numClasses {
		c := classSize(i)
		if classFor(c) != i || classOf(c) != i {
			t.Fatalf("class %d (%d bytes): classFor %d, classOf %d", i, c, classFor(c), classOf(c))
		}
		if i > 0 && classFor(classSize(i-1)+1) != i {
			t.Fatalf("%d bytes: class %d, want %d", classSize(i-1)+1, classFor(classSize(i-1)+1), i)
		}
		if i > 0 && c > classSize(i-1)*5/4+1 {
			t.Fatalf("class %d (%d bytes) is more than 25%% over class %d", i, c, i-1)
		}
	}
	for _, n := range []int{0, 1, minPooled - 1, minPooled, minPooled + 1, 1 << 20, 1<<20 + 100, 3 << 20} {
		b := AllocBuffer(n)
		if len(b) != n {
			t.Fatalf("AllocBuffer(%d): len %d", n, len(b))
		}
		if n >= minPooled && classOf(cap(b)) < 0 {
			t.Fatalf("AllocBuffer(%d): capacity %d is no class", n, cap(b))
		}
		ReleaseBuffer(b)
	}
	if classOf(minPooled+1) >= 0 || classOf(minPooled-1) >= 0 || classOf(maxPooled+1) >= 0 {
		t.Fatal("classOf accepts a size that is no class")
	}
}

func TestBufferReuse(t *testing.T) {
	const n = 100 << 10
	// Nothing else in this test binary allocates this class concurrently,
	// but a GC may trim the pool: retry a few times.
	reused := false
	for range 10 {
		b := AllocBuffer(n)
		ReleaseBuffer(b)
		c := AllocBuffer(n)
		reused = &c[:1][0] == &b[:1][0]
		ReleaseBuffer(c)
		if reused {
			break
		}
	}
	if !reused {
		t.Fatal("a released buffer was never reused")
	}
	// A buffer whose capacity is no class is not pooled; releasing it,
	// nil, or a small buffer is harmless.
	odd := make([]byte, n, n+1)
	ReleaseBuffer(odd)
	ReleaseBuffer(nil)
	ReleaseBuffer(make([]byte, 10))
	for range 100 {
		if c := AllocBuffer(n); &c[:1][0] == &odd[0] {
			t.Fatal("a buffer of an odd capacity was pooled")
		}
	}
}

// patterned fills b with bytes derived from seed.
func patterned(b []byte, seed int) []byte {
	for i := range b {
		b[i] = byte(seed + i*7)
	}
	binary.BigEndian.PutUint64(b, uint64(seed))
	return b
}

// Messages posted with PostRelease and PostParts arrive intact while the
// sender recycles acknowledged buffers and the handler releases received
// ones (which the frame reader reuses), on every transport.
func TestPostReleaseAndParts(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			sizes := []int{minPooled, 100 << 10, 1<<20 + 3}
			want := func(i int) []byte { return patterned(make([]byte, sizes[i%len(sizes)]), i) }
			got := make(chan error, n)
			local := tc.name == "local"
			srv := mustServe(t, tc.addr(t), func(msg []byte) {
				seq := int(binary.BigEndian.Uint64(msg))
				if !bytes.Equal(msg, want(seq)) {
					got <- errors.New("message corrupted")
				} else {
					got <- nil
				}
				if !local { // a local handler gets the sender's bytes
					ReleaseBuffer(msg)
				}
			}, nil)
			s := mustDial(t, srv.Addr(), nil)
			for i := range n {
				w := want(i)
				switch i % 3 {
				case 0:
					b := AllocBuffer(len(w))
					copy(b, w)
					s.PostRelease(b)
				case 1:
					own := AllocBuffer(len(w) - 8)
					copy(own, w[8:])
					s.PostParts([][]byte{w[:8], own[:len(own)/2], own[len(own)/2:]}, own)
				default:
					s.PostParts([][]byte{w[:8], w[8:]}, nil)
				}
			}
			for range n {
				if err := <-got; err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			srv.Close()
		})
	}
}

// An undeliverable PostParts message is handed over in one piece.
func TestPostPartsUndeliverable(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			und := make(undeliverables, 1)
			srv := mustServe(t, tc.addr(t), func([]byte) {}, nil)
			s := mustDial(t, srv.Addr(), &Options{OnUndeliverable: und.fn})
			s.Close()
			srv.Close()
			w := patterned(make([]byte, 50<<10), 1)
			s.PostParts([][]byte{w[:10], w[10:]}, nil)
			u := und.next(t)
			if !bytes.Equal(u.msg, w) || !errors.Is(u.err, ErrClosed) {
				t.Fatalf("undeliverable: %d bytes (equal %v), err %v", len(u.msg), bytes.Equal(u.msg, w), u.err)
			}
		})
	}
}

// A buffer from CopyOwned goes back to its pool once nothing reaches it,
// and a later CopyOwned hands it out again; one still reachable never
// does, whatever the collector does meanwhile.
func TestOwnedBufferRecycling(t *testing.T) {
	const n = 5<<20 + 1 // a class nothing else in this test binary uses
	class := &ownedPools.classes[classFor(n)]
	pooled := func(p uintptr) (in bool, size int) {
		class.mu.Lock()
		defer class.mu.Unlock()
		for _, b := range class.free {
			in = in || uintptr(unsafe.Pointer(b)) == p
		}
		return in, len(class.free)
	}
	kept := CopyOwned(patterned(make([]byte, n), 1))
	dropped := uintptr(unsafe.Pointer(unsafe.SliceData(CopyOwned(make([]byte, n)))))
	deadline := time.Now().Add(testWait)
	for in, _ := pooled(dropped); !in; in, _ = pooled(dropped) {
		if time.Now().After(deadline) {
			t.Fatal("an unreachable owned buffer never went back to its pool")
		}
		runtime.GC() // finds it unreachable; its finalizer runs soon after
		runtime.Gosched()
	}
	// Earlier runs of this test may have pooled buffers too, and their
	// finalizers may still be pooling more.
	_, size := pooled(dropped)
	var taken [][]byte
	for len(taken) < size+16 {
		b := CopyOwned(kept)
		taken = append(taken, b)
		if uintptr(unsafe.Pointer(unsafe.SliceData(b))) == dropped {
			break
		}
	}
	if last := taken[len(taken)-1]; uintptr(unsafe.Pointer(unsafe.SliceData(last))) != dropped {
		t.Fatalf("the pooled buffer %#x was not handed out again", dropped)
	}
	runtime.GC()
	runtime.GC()
	for _, b := range taken {
		if &b[0] == &kept[0] {
			t.Fatal("a reachable owned buffer was handed out again")
		}
	}
	if !bytes.Equal(kept, patterned(make([]byte, n), 1)) {
		t.Fatal("a reachable owned buffer was overwritten")
	}
	runtime.KeepAlive(kept)
}
