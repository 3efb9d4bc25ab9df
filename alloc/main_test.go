package alloc_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/actormesh/actormesh/mesh"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// bootstrapBin is the bootstrap binary, built once per test binary so that
// `go test ./...` works on a fresh clone.
var bootstrapBin string

// helperEnv turns the test binary into a client process that allocates two
// children with the bootstrap binary named by its value, prints their pids
// and waits to be killed (TestParentKilled).
const helperEnv = "ACTORMESH_ALLOC_TEST_HELPER"

func TestMain(m *testing.M) {
	if bin := os.Getenv(helperEnv); bin != "" {
		os.Exit(runHelper(bin))
	}
	dir, err := os.MkdirTemp("", "actormesh-alloc-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bootstrapBin, err = testutil.BuildBootstrap(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the bootstrap binary:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		// The spawner goroutine lives as long as the process, by design.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/actormesh/actormesh/alloc.spawnerLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func runHelper(bin string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := alloc.NewProcessAllocator(alloc.Command{Path: bin}).Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 2)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	var pids []string
	running := 0
	for running < 2 {
		ev, err := a.Next(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		switch ev := ev.(type) {
		case alloc.Created:
			pids = append(pids, strconv.Itoa(ev.PID))
		case alloc.Running:
			running++
		default:
			fmt.Fprintln(os.Stderr, "helper: unexpected event", ev)
			return 1
		}
	}
	fmt.Println("pids", strings.Join(pids, " "))
	// The test SIGKILLs us; should it die first, stdin closes and we
	// clean up rather than leave the children to their watchdogs.
	bufio.NewReader(os.Stdin).ReadString('\n')
	a.StopAndWait(ctx)
	return 0
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clientProc is a proc with a client instance for talking to agents.
func clientProc(t testing.TB) *core.Instance {
	p, err := core.DirectProc(transport.Unix.Any(), "testclient", nil)
	require.NoError(t, err)
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	inst, _, err := p.Instance("client")
	require.NoError(t, err)
	return inst
}

// ping does a message round trip to a proc's agent.
func ping(ctx context.Context, client *core.Instance, agent core.ActorID) (core.ProcID, error) {
	port, rx := core.OpenOncePort[core.ProcID](client)
	if err := (core.ActorRef{ID: agent}).Send(client, mesh.Ping{Reply: port.Bind()}); err != nil {
		return core.ProcID{}, err
	}
	return rx.Recv(ctx)
}

// procState returns the state letter of pid ('R', 'S', 'Z', ...) and its
// parent, or ok=false if there is no such process.
func procState(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is parenthesised and may contain spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+4 > len(s) {
		return 0, 0, false
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0][0], ppid, true
}

// alive reports whether pid is a live (non-zombie) process.
func alive(pid int) bool {
	st, _, ok := procState(pid)
	return ok && st != 'Z'
}

// childrenOf lists the processes whose parent is pid, zombies included.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procState(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// waitGone polls /proc until none of pids is alive, or the deadline.
func waitGone(ctx context.Context, pids ...int) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %v still alive: %w", left, ctx.Err())
		case <-t.C:
		}
	}
}

// next returns the next event or fails the test.
func next(t testing.TB, ctx context.Context, a alloc.Alloc) alloc.Event {
	t.Helper()
	ev, err := a.Next(ctx)
	require.NoError(t, err)
	return ev
}

// drain stops a and returns every Stopped reason by key until ErrDone.
func drain(t testing.TB, ctx context.Context, a alloc.Alloc) map[string]alloc.StopReason {
	t.Helper()
	a.Stop()
	out := map[string]alloc.StopReason{}
	for {
		ev, err := a.Next(ctx)
		if errors.Is(err, alloc.ErrDone) {
			return out
		}
		require.NoError(t, err)
		if s, ok := ev.(alloc.Stopped); ok {
			out[s.Key] = s.Reason
		} else {
			t.Fatalf("unexpected event while draining: %v", ev)
		}
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS")
}
