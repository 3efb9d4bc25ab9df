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

func TestMain(m *testing.M) {
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
		if left := testutil.WaitNoDescendants(10 * time.Second); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "processes left behind:", left)
			code = 1
		}
		// The allocator's spawner thread lives as long as the process, by design.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/actormesh/actormesh/alloc.spawnerLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
