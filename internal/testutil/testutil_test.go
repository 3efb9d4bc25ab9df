package testutil

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func TestContextSwitchesCountsThisProcess(t *testing.T) {
	self := []int{os.Getpid()}
	before := ContextSwitches(self)
	require.Positive(t, before, "a running process has been scheduled at least once")
	// A thread asleep in the kernel is switched out: at least one more.
	ts := syscall.NsecToTimespec(int64(time.Millisecond))
	require.NoError(t, syscall.Nanosleep(&ts, nil))
	assert.Greater(t, ContextSwitches(self), before)
	assert.Zero(t, ContextSwitches([]int{-1}), "a process that does not exist")
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

// An orphan (its parent exited, so it was reparented out of our tree)
// escapes Descendants but not Leftovers, through the inherited marker.
func TestLeftoversSeeOrphans(t *testing.T) {
	marker := MarkRun()
	require.Equal(t, marker, MarkRun(), "MarkRun is idempotent")
	out, err := exec.Command("sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!").Output()
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

	got, ok := Marker(pid)
	require.True(t, ok, "the orphan's environment is readable")
	assert.Equal(t, marker, got, "the orphan inherited the marker")
	assert.False(t, slices.ContainsFunc(Descendants(os.Getpid()), func(p Proc) bool { return p.PID == pid }), "the shell exited: the sleep left our tree")
	assert.True(t, slices.ContainsFunc(Leftovers(), func(p Proc) bool { return p.PID == pid }), "Leftovers misses the orphan %d", pid)

	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Empty(t, WaitDead([]int{pid}, 10*time.Second), "SIGKILLed orphan still alive")
	assert.False(t, slices.ContainsFunc(Marked(), func(p Proc) bool { return p.PID == pid }), "a dead orphan is not left over")
}

// A process started by an inner test binary extends the marker; the outer
// run still counts it.
func TestMarkedSeesInnerRuns(t *testing.T) {
	marker := MarkRun()
	cmd := exec.Command("sleep", "60")
	cmd.Env = append(os.Environ(), EnvRunMarker+"="+marker+"/inner")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	assert.True(t, slices.ContainsFunc(Marked(), func(p Proc) bool { return p.PID == cmd.Process.Pid }))

	other := exec.Command("sleep", "60")
	other.Env = append(os.Environ(), EnvRunMarker+"="+marker+"x") // another run whose marker shares a prefix
	require.NoError(t, other.Start())
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	assert.False(t, slices.ContainsFunc(Marked(), func(p Proc) bool { return p.PID == other.Process.Pid }))
}
