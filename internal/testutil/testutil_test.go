package testutil

import (
	"os"
	"slices"
	"testing"
	"time"
)

func TestCPUTimeCountsThisProcess(t *testing.T) {
	self := []int{os.Getpid()}
	before := CPUTime(self)
	// Burn CPU until the clock-tick accounting has seen at least 100 ms.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for CPUTime(self)-before < 100*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("CPU time moved only %v in 10 s of spinning", CPUTime(self)-before)
		}
		for i := range 1_000_000 {
			x += i
		}
	}
	_ = x
	if got := CPUTime([]int{-1}); got != 0 {
		t.Errorf("CPU time of a process that does not exist: %v, want 0", got)
	}
}

func TestTreeStartsWithItsRoot(t *testing.T) {
	tree := Tree(os.Getpid())
	if len(tree) == 0 || tree[0] != os.Getpid() {
		t.Fatalf("Tree(%d) = %v, want it first", os.Getpid(), tree)
	}
	if slices.Contains(tree[1:], os.Getpid()) {
		t.Errorf("Tree(%d) = %v lists its root twice", os.Getpid(), tree)
	}
}
