// Package tests holds end-to-end tests that run real meshes: bootstrap
// children, hosts and procs as OS processes, talking over unix sockets.
package tests

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/actormesh/actormesh/internal/testutil"
	"go.uber.org/goleak"
)

// bootstrapBin is the bootstrap binary, built once for this test binary.
var bootstrapBin string

// leakOpts are the goroutines that may outlive any test.
var leakOpts = []goleak.Option{
	// The allocator's spawner thread lives as long as the process, by design.
	goleak.IgnoreAnyFunction("github.com/actormesh/actormesh/alloc.spawnerLoop"),
}

func TestMain(m *testing.M) {
	// Before anything is spawned: every process this run starts, however
	// deep, carries the marker, so an orphan cannot hide from the checks.
	testutil.MarkRun()
	if spec := os.Getenv(envRawNode); spec != "" {
		if err := rawGatherNode(spec); err != nil {
			fmt.Fprintln(os.Stderr, "raw gather node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "actormesh-tests")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bootstrapBin, err = testutil.BuildBootstrap(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if left := testutil.WaitNoLeftovers(10 * time.Second); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "processes left behind:", left)
			code = 1
		}
		if err := goleak.Find(leakOpts...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkLeaks makes the test fail if, once it and every cleanup registered
// after this call have run, a process it started is still alive (marked
// orphans included) or a goroutine started during the test still runs.
// Call it before setting anything up: cleanups run last-in first-out, so
// this check comes after the mesh's shutdown.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if left := testutil.WaitNoLeftovers(10 * time.Second); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
		// Connections to procs that just died wind down asynchronously:
		// goleak.Find retries for a second or two; go on until a deadline
		// rather than fail on a slow machine.
		opts := append([]goleak.Option{before}, leakOpts...)
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find(opts...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines leaked: %v", err)
				return
			}
		}
	})
}
