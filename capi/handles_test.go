package main

import "testing"

// A slot is retired when its generations run out, so that a handle freed
// long ago never names a new object.
func TestHandleGenerationsDoNotWrap(t *testing.T) {
	var r registry
	first, err := r.add(kindPort, "first")
	if err != nil {
		t.Fatal(err)
	}
	r.remove(first)
	idx := uint32(first & idxMask)
	r.slots[idx].gen = genMask - 1 // as after 2^24 - 2 cycles
	next, err := r.add(kindPort, "next")
	if err != nil {
		t.Fatal(err)
	}
	if uint32(next&idxMask) != idx {
		t.Fatalf("slot %d not reused", idx)
	}
	r.remove(next)
	last, err := r.add(kindPort, "last") // the slot's last generation
	if err != nil {
		t.Fatal(err)
	}
	r.remove(last)
	again, err := r.add(kindPort, "again")
	if err != nil {
		t.Fatal(err)
	}
	if uint32(again&idxMask) == idx {
		t.Fatalf("slot %d reused after its last generation: handle %#x", idx, again)
	}
	for _, stale := range []uint64{first, next, last} {
		if _, err := r.lookup(stale, kindPort); statusOf(err) != statusEBadHandle {
			t.Errorf("stale handle %#x: %v", stale, err)
		}
	}
}
