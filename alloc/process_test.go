package alloc_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type allocated struct {
	created []alloc.Created // by rank
	running []alloc.Running // by rank
}

// allocateAll allocates and waits until every rank runs, checking that
// every Created comes before any Running and that procs are distinct.
func allocateAll(t *testing.T, ctx context.Context, allocator alloc.Allocator, spec alloc.Spec) (alloc.Alloc, allocated) {
	// The local allocator is documented to follow each Created by its Running.
	_, local := allocator.(*alloc.LocalAllocator)
	t.Helper()
	a, err := allocator.Allocate(ctx, spec)
	require.NoError(t, err)
	n := spec.Extent.NumRanks()
	got := allocated{created: make([]alloc.Created, n), running: make([]alloc.Running, n)}
	rankOf := map[string]int{}
	seenRunning := 0
	for seenRunning < n {
		switch ev := next(t, ctx, a).(type) {
		case alloc.Created:
			if !local {
				require.Zero(t, seenRunning, "Created after a Running")
			}
			r := ev.Point.Rank()
			require.Empty(t, got.created[r].Key, "rank %d created twice", r)
			assert.Equal(t, spec.Extent.String(), ev.Point.Extent().String())
			got.created[r] = ev
			rankOf[ev.Key] = r
		case alloc.Running:
			r, ok := rankOf[ev.Key]
			require.True(t, ok, "Running for key %s before its Created", ev.Key)
			got.running[r] = ev
			seenRunning++
		default:
			t.Fatalf("unexpected event %v", ev)
		}
	}
	require.Len(t, rankOf, n)
	procs := map[string]bool{}
	for r, ev := range got.running {
		require.NotEmpty(t, ev.Key, "rank %d never ran", r)
		assert.False(t, procs[ev.ProcID.String()], "proc %s twice", ev.ProcID)
		procs[ev.ProcID.String()] = true
		assert.Equal(t, ev.ProcID.Addr, ev.Addr)
		assert.Equal(t, ev.ProcID, ev.Agent.Proc)
		assert.Equal(t, a.Name()+"_"+strconv.Itoa(r), ev.ProcID.Name)
	}
	return a, got
}

// testAllocation is the shared body of the allocation test.
func testAllocation(t *testing.T, allocator alloc.Allocator, inProcess bool) {
	ctx := testCtx(t)
	client := clientProc(t)
	spec := alloc.Spec{Extent: alloc.MustExtent("replicas", 4)}
	a, got := allocateAll(t, ctx, allocator, spec)
	assert.Equal(t, spec.Extent.String(), a.Extent().String())

	for _, r := range got.running {
		id, err := ping(ctx, client, r.Agent)
		require.NoError(t, err, "round trip to %s", r.Agent)
		assert.Equal(t, r.ProcID, id)
	}
	var pids []int
	for _, c := range got.created {
		if inProcess {
			assert.Equal(t, os.Getpid(), c.PID)
			continue
		}
		require.True(t, alive(c.PID), "pid %d", c.PID)
		pids = append(pids, c.PID)
	}
	if !inProcess {
		kib, err := rssKiB(pids[0])
		require.NoError(t, err)
		fi, err := os.Stat(bootstrapBin)
		require.NoError(t, err)
		t.Logf("bootstrap binary %.1f MiB; idle child RSS %.1f MiB", float64(fi.Size())/(1<<20), float64(kib)/1024)
	}

	reasons := drain(t, ctx, a)
	require.Len(t, reasons, 4)
	for _, c := range got.created {
		r, ok := reasons[c.Key]
		require.True(t, ok, "no Stopped for rank %d", c.Point.Rank())
		assert.True(t, r.Clean(), "rank %d: %s", c.Point.Rank(), r)
	}
	_, err := a.Next(ctx)
	assert.ErrorIs(t, err, alloc.ErrDone)
	for _, pid := range pids {
		assert.False(t, alive(pid), "pid %d still exists", pid)
		_, _, exists := procState(pid)
		assert.False(t, exists, "pid %d not reaped", pid)
	}
	if !inProcess {
		assert.Empty(t, childrenOf(os.Getpid()), "processes left with us as parent")
	}
}

func TestProcessAllocator(t *testing.T) {
	testAllocation(t, alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}), false)
}

func TestLocalAllocator(t *testing.T) {
	testAllocation(t, alloc.NewLocalAllocator(), true)
}

func TestStopAndWait(t *testing.T) {
	ctx := testCtx(t)
	a, got := allocateAll(t, ctx, alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}), alloc.Spec{Extent: alloc.MustExtent("hosts", 2, "gpus", 2)})
	require.NoError(t, a.StopAndWait(ctx))
	_, err := a.Next(ctx)
	assert.ErrorIs(t, err, alloc.ErrDone)
	for _, c := range got.created {
		_, _, exists := procState(c.PID)
		assert.False(t, exists, "pid %d", c.PID)
	}
}

func TestStopBeforeStart(t *testing.T) {
	ctx := testCtx(t)
	for _, allocator := range []alloc.Allocator{alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}), alloc.NewLocalAllocator()} {
		a, err := allocator.Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 3)})
		require.NoError(t, err)
		require.NoError(t, a.StopAndWait(ctx))
		_, err = a.Next(ctx)
		assert.ErrorIs(t, err, alloc.ErrDone)
	}
}

func TestChildKilled(t *testing.T) {
	ctx := testCtx(t)
	client := clientProc(t)
	a, got := allocateAll(t, ctx, alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}), alloc.Spec{Extent: alloc.MustExtent("replicas", 3)})
	victim := got.created[1]
	require.NoError(t, syscall.Kill(victim.PID, syscall.SIGKILL))

	ev := next(t, ctx, a)
	st, ok := ev.(alloc.Stopped)
	require.True(t, ok, "got %v", ev)
	assert.Equal(t, victim.Key, st.Key)
	assert.Equal(t, alloc.StopKilled, st.Reason.Kind, "%s", st.Reason)
	assert.Equal(t, syscall.SIGKILL, st.Reason.Signal)
	assert.Contains(t, st.Reason.String(), "signal 9")

	for _, r := range []int{0, 2} {
		id, err := ping(ctx, client, got.running[r].Agent)
		require.NoError(t, err, "rank %d after rank 1 died", r)
		assert.Equal(t, got.running[r].ProcID, id)
	}
	reasons := drain(t, ctx, a)
	require.Len(t, reasons, 2, "the killed child is not respawned")
	for k, r := range reasons {
		assert.True(t, r.Clean(), "%s: %s", k, r)
	}
}

// syncBuffer collects the allocator's forwarded output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestChildExitsWithCode(t *testing.T) {
	ctx := testCtx(t)
	pa := alloc.NewProcessAllocator(alloc.Command{Path: "/bin/sh", Args: []string{"-c", "echo to-stdout; echo boom >&2; exit 3"}})
	var out syncBuffer
	pa.Output = &out
	a, err := pa.Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 1)})
	require.NoError(t, err)
	created, ok := next(t, ctx, a).(alloc.Created)
	require.True(t, ok)
	ev := next(t, ctx, a)
	st, ok := ev.(alloc.Stopped)
	require.True(t, ok, "got %v", ev)
	assert.Equal(t, created.Key, st.Key)
	assert.Equal(t, alloc.StopExited, st.Reason.Kind)
	assert.Equal(t, 3, st.Reason.Code)
	assert.Equal(t, []string{"boom"}, st.Reason.Tail)
	assert.Contains(t, st.Reason.String(), "code 3")
	assert.Contains(t, st.Reason.String(), "boom")
	assert.Contains(t, out.String(), "[rank 0] boom\n")
	assert.Contains(t, out.String(), "[rank 0] to-stdout\n")
	assert.Empty(t, drain(t, ctx, a))
}

func TestNoHello(t *testing.T) {
	ctx := testCtx(t)
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	pa := alloc.NewProcessAllocator(alloc.Command{Path: sleep, Args: []string{"600"}})
	pa.HelloTimeout = 300 * time.Millisecond
	a, err := pa.Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 2)})
	require.NoError(t, err)
	keys := map[string]int{}
	for range 2 {
		c, ok := next(t, ctx, a).(alloc.Created)
		require.True(t, ok)
		keys[c.Key] = c.PID
	}
	for range 2 {
		ev := next(t, ctx, a)
		st, ok := ev.(alloc.Stopped)
		require.True(t, ok, "got %v", ev)
		require.Contains(t, keys, st.Key)
		assert.Equal(t, alloc.StopWatchdog, st.Reason.Kind, "%s", st.Reason)
		assert.Contains(t, st.Reason.Watchdog, "hello timeout")
		assert.Equal(t, syscall.SIGTERM, st.Reason.Signal)
	}
	assert.Empty(t, drain(t, ctx, a))
	for _, pid := range keys {
		_, _, exists := procState(pid)
		assert.False(t, exists, "pid %d", pid)
	}
	assert.Empty(t, childrenOf(os.Getpid()))
}

// TestStopBeforeHello: a child that has not said Hello when the
// allocation stops has started nothing and cannot be asked to exit, so it
// is sent SIGTERM at once, and SIGKILL after the grace period if it
// ignores that.
func TestStopBeforeHello(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		signal syscall.Signal
	}{
		{"sigterm", "exec sleep 600", syscall.SIGTERM},
		{"sigkill", "trap '' TERM; exec sleep 600", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			pa := alloc.NewProcessAllocator(alloc.Command{Path: "/bin/sh", Args: []string{"-c", tc.script}})
			pa.ExitTimeout = time.Hour // not what ends it
			pa.KillGrace = 200 * time.Millisecond
			a, err := pa.Allocate(ctx, alloc.Spec{Extent: alloc.Unity()})
			require.NoError(t, err)
			c, ok := next(t, ctx, a).(alloc.Created)
			require.True(t, ok)
			if tc.signal == syscall.SIGKILL {
				waitIgnored(t, c.PID, syscall.SIGTERM)
			}
			reasons := drain(t, ctx, a)
			r := reasons[c.Key]
			assert.Equal(t, alloc.StopWatchdog, r.Kind, "%s", r)
			assert.Contains(t, r.Watchdog, "stopped before its Hello")
			assert.Equal(t, tc.signal, r.Signal)
			_, _, exists := procState(c.PID)
			assert.False(t, exists)
		})
	}
}

// waitIgnored waits until pid ignores sig (its shell has set the trap).
func waitIgnored(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ignored, err := testutil.SigIgnored(pid, sig)
		require.NoError(t, err)
		if ignored {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d does not ignore %v after 10s", pid, sig)
		}
		time.Sleep(time.Millisecond) // polling the state, with a deadline
	}
}

// TestStopWatchdog: a running child that does not exit after Stop (here
// one stopped with SIGSTOP, which cannot read the request) is sent SIGTERM
// after the exit timeout, then SIGKILL after the grace period.
func TestStopWatchdog(t *testing.T) {
	ctx := testCtx(t)
	pa := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin})
	pa.ExitTimeout = 100 * time.Millisecond
	pa.KillGrace = 200 * time.Millisecond
	a, err := pa.Allocate(ctx, alloc.Spec{Extent: alloc.Unity()})
	require.NoError(t, err)
	c, ok := next(t, ctx, a).(alloc.Created)
	require.True(t, ok)
	ev := next(t, ctx, a)
	_, ok = ev.(alloc.Running)
	require.True(t, ok, "got %v", ev)
	require.NoError(t, syscall.Kill(c.PID, syscall.SIGSTOP))

	r := drain(t, ctx, a)[c.Key]
	assert.Equal(t, alloc.StopWatchdog, r.Kind, "%s", r)
	assert.Contains(t, r.Watchdog, "stop timeout")
	assert.Equal(t, syscall.SIGKILL, r.Signal, "a stopped process dies of SIGKILL only")
	_, _, exists := procState(c.PID)
	assert.False(t, exists)
}

func TestSpawnFailure(t *testing.T) {
	ctx := testCtx(t)
	a, err := alloc.NewProcessAllocator(alloc.Command{Path: "/nonexistent/bootstrap"}).Allocate(ctx, alloc.Spec{Extent: alloc.MustExtent("replicas", 2)})
	require.NoError(t, err)
	ev := next(t, ctx, a)
	f, ok := ev.(alloc.Failed)
	require.True(t, ok, "got %v", ev)
	assert.Contains(t, f.Description, "/nonexistent/bootstrap")
	assert.Empty(t, drain(t, ctx, a))
}

func TestProcessAllocatorRejectsLocal(t *testing.T) {
	_, err := alloc.NewProcessAllocator(alloc.Command{Path: bootstrapBin}).Allocate(testCtx(t), alloc.Spec{Extent: alloc.Unity(), Transport: 1})
	assert.ErrorContains(t, err, "local transport")
}

// TestParentKilled SIGKILLs a client process that holds an allocation and
// checks that its children go too: by pdeathsig, or by heartbeat loss.
func TestParentKilled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"pdeathsig", nil},
		{"heartbeat", []string{
			alloc.EnvEnablePdeathsig + "=false",
			alloc.EnvHeartbeatInterval + "=200ms",
			alloc.EnvHeartbeatTimeout + "=1s",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(append(os.Environ(), helperEnv+"="+bootstrapBin), tc.env...)
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			waited := false
			defer func() {
				if !waited {
					cmd.Process.Kill()
					cmd.Wait()
				}
			}()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			fields := strings.Fields(line)
			require.Len(t, fields, 3, "helper said %q", line)
			var pids []int
			for _, f := range fields[1:] {
				pid, err := strconv.Atoi(f)
				require.NoError(t, err)
				_, ppid, ok := procState(pid)
				require.True(t, ok)
				require.Equal(t, cmd.Process.Pid, ppid)
				pids = append(pids, pid)
			}
			require.NoError(t, cmd.Process.Kill())
			cmd.Wait()
			waited = true
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			require.NoError(t, waitGone(wctx, pids...))
		})
	}
}

// runBootstrap runs the binary directly with env added.
func runBootstrap(t *testing.T, env ...string) (code int, stderr string) {
	t.Helper()
	ctx := testCtx(t)
	cmd := exec.CommandContext(ctx, bootstrapBin)
	cmd.Env = append(os.Environ(), env...)
	var eb bytes.Buffer
	cmd.Stderr = &eb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), eb.String()
	}
	require.NoError(t, err)
	return 0, eb.String()
}

func TestBootstrapBadInvocation(t *testing.T) {
	t.Run("garbage mode", func(t *testing.T) {
		code, stderr := runBootstrap(t, alloc.EnvBootstrapMode+"=%%not-base64%%")
		assert.NotZero(t, code)
		assert.Contains(t, stderr, alloc.EnvBootstrapMode)
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	})
	t.Run("unknown variant", func(t *testing.T) {
		code, stderr := runBootstrap(t, alloc.EnvBootstrapMode+"=eyJOb3BlIjp7fX0=") // {"Nope":{}}
		assert.NotZero(t, code)
		assert.Contains(t, stderr, `unknown variant "Nope"`)
	})
	t.Run("wrong address", func(t *testing.T) {
		code, stderr := runBootstrap(t,
			alloc.EnvBootstrapAddr+"=unix:@actormesh-nobody-"+strconv.Itoa(os.Getpid()),
			alloc.EnvIndex+"=0")
		assert.NotZero(t, code)
		assert.Contains(t, stderr, "cannot reach the allocator")
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
	})
	t.Run("no address", func(t *testing.T) {
		code, stderr := runBootstrap(t, alloc.EnvBootstrapAddr+"=")
		assert.NotZero(t, code)
		assert.Contains(t, stderr, alloc.EnvBootstrapAddr)
	})
}
