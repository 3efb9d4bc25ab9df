package core

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

const peerEnv = "ACTORMESH_CORE_TEST_PEER"

func encodeParams(v any) ([]byte, error) { return msgpack.Marshal(v) }

// runPeer turns the test binary into a peer proc when the parent test asks
// for one: it serves a proc with a Recorder spawned by type name, prints
// the proc's id, and lives until its stdin closes (the parent is gone).
func runPeer() bool {
	mode := os.Getenv(peerEnv)
	if mode == "" {
		return false
	}
	addr := transport.Unix.Any()
	if mode == "tcp" {
		addr = transport.TCP.AnyOn("127.0.0.1")
	}
	p, err := DirectProc(addr, "peer", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(2)
	}
	params, _ := encodeParams(RecorderParams{Offset: 1000})
	if _, err := p.SpawnType("rec", "coretest.Recorder", params); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(2)
	}
	if _, err := p.SpawnType("sink", "coretest.Sink", nil); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(2)
	}
	if path := os.Getenv("ACTORMESH_PEER_CPUPROFILE"); path != "" {
		// For profiling the receiving side of benchmarks.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Println(p.ID())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Shutdown(ctx)
	return true
}

// ParentOnly is registered by the parent test process only, after the
// peer has started.
type ParentOnly struct{ X int }

type peer struct {
	cmd *exec.Cmd
	id  ProcID
}

// peerProcess is this test binary re-executed with env, which prints one
// line and lives until its stdin closes; it is reaped when the test ends.
type peerProcess struct {
	cmd  *exec.Cmd
	line string
}

func spawnPeerProcess(tb testing.TB, env ...string) *peerProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(tb, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(tb, err)
	return &peerProcess{cmd: cmd, line: strings.TrimSpace(line)}
}

func startPeer(t *testing.T, mode string) *peer {
	t.Helper()
	pp := spawnPeerProcess(t, peerEnv+"="+mode)
	id, err := ParseProcID(pp.line)
	require.NoError(t, err)
	return &peer{cmd: pp.cmd, id: id}
}

func startPeerB(b *testing.B, mode string, env ...string) ProcID {
	pp := spawnPeerProcess(b, append([]string{peerEnv + "=" + mode}, env...)...)
	id, err := ParseProcID(pp.line)
	if err != nil {
		b.Fatal(err)
	}
	return id
}

func TestRemoteActors(t *testing.T) {
	for _, mode := range []string{"unix", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testCtx(t)
			pr := startPeer(t, mode)
			addr := transport.Unix.Any()
			if mode == "tcp" {
				addr = transport.TCP.AnyOn("127.0.0.1")
			}
			p, err := DirectProc(addr, "local", nil)
			require.NoError(t, err)
			defer p.Shutdown(context.Background())
			client, _, err := p.Instance("client")
			require.NoError(t, err)
			rec := ActorRef{ID: pr.id.ActorID("rec", 0)}

			port, rx := OpenPort[int](client)
			require.NoError(t, rec.Send(client, Ping{N: 1, Reply: port.Bind()}))
			v, err := rx.Recv(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1001, v, "reply computed by the actor the peer spawned by type name")

			const n = 20000
			for i := range n {
				require.NoError(t, rec.Send(client, Record{N: i}))
			}
			requireRecorded(t, client, rec, n)

			// Unknown actor on the remote proc comes back with the reason.
			require.NoError(t, ActorRef{ID: pr.id.ActorID("ghost", 0)}.Send(client, Record{}))
			u, err := client.Undeliverables().Recv(ctx)
			require.NoError(t, err)
			assert.Contains(t, u.Reason, "no actor")
			var back Record
			require.NoError(t, msgpack.Unmarshal(u.Body, &back))

			// Unknown proc name at a live address.
			require.NoError(t, ActorRef{ID: ProcID{Addr: pr.id.Addr, Name: "other"}.ActorID("rec", 0)}.Send(client, Record{}))
			u, err = client.Undeliverables().Recv(ctx)
			require.NoError(t, err)
			assert.Contains(t, u.Reason, `no proc "other"`)

			// A type the receiving process does not know comes back.
			RegisterMessage[ParentOnly]("coretest.ParentOnly")
			require.NoError(t, rec.Send(client, ParentOnly{X: 1}))
			u, err = client.Undeliverables().Recv(ctx)
			require.NoError(t, err)
			assert.Contains(t, u.Reason, "unknown message type")
			assert.Equal(t, "coretest.ParentOnly", u.Type)

			// Unregistered types cannot leave the proc.
			type unregistered struct{ X int }
			err = rec.Send(client, unregistered{X: 1})
			assert.ErrorIs(t, err, ErrUnknownMessageType)
		})
	}
}

// requireRecorded checks that rec recorded Records 0..n-1, in order.
func requireRecorded(t *testing.T, client *Instance, rec ActorRef, n int) {
	t.Helper()
	rep, rrx := OpenOncePort[[]int](client)
	require.NoError(t, rec.Send(client, Report{Reply: rep.Bind()}))
	seen, err := rrx.Recv(testCtx(t))
	require.NoError(t, err)
	require.Len(t, seen, n)
	for i, v := range seen {
		require.Equal(t, i, v, "message %d out of order", i)
	}
}

func TestRemotePeerKilled(t *testing.T) {
	ctx := testCtx(t)
	pr, _, client := peerClient(t, &ProcOptions{Transport: transport.Options{DeliveryTimeout: 500 * time.Millisecond}})
	rec := pingedRec(t, pr, client)

	require.NoError(t, pr.cmd.Process.Signal(syscall.SIGKILL))
	port, _ := OpenPort[int](client)
	require.NoError(t, rec.Send(client, Ping{N: 2, Reply: port.Bind()}))
	u, err := client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, rec.ID, u.Dest.Actor)
	assert.NotEmpty(t, u.Reason)
}

func TestDeliveryTimeoutToNowhere(t *testing.T) {
	ctx := testCtx(t)
	p, err := DirectProc(transport.Unix.Any(), "local", &ProcOptions{Transport: transport.Options{DeliveryTimeout: 200 * time.Millisecond}})
	require.NoError(t, err)
	defer p.Shutdown(context.Background())
	client, _, err := p.Instance("client")
	require.NoError(t, err)
	nowhere := ProcID{Addr: transport.MustParseAddr("unix:@actormesh-nobody-" + fmt.Sprint(os.Getpid())), Name: "x"}
	require.NoError(t, ActorRef{ID: nowhere.ActorID("a", 0)}.Send(client, Record{N: 3}))
	u, err := client.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	assert.Contains(t, u.Reason, "delivery timeout")
}

// An outgoing channel unused for two sweeps, with nothing in flight, is
// closed, and the next message to its address dials anew: a proc keeps no
// channel for every proc it ever talked to (or was made to answer).
func TestIdleSendersAreClosed(t *testing.T) {
	a, _ := newTestProc(t, &ProcOptions{senderSweep: 10 * time.Millisecond})
	b, _ := newTestProc(t, nil)
	rec, err := b.Spawn("rec", &recorder{})
	require.NoError(t, err)
	client, _, err := a.Instance("c")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	report := func() []int {
		port, rx := OpenOncePort[[]int](client)
		require.NoError(t, rec.Ref().Send(client, Report{Reply: port.Bind()}))
		got, err := rx.Recv(ctx)
		require.NoError(t, err)
		return got
	}
	require.NoError(t, rec.Ref().Send(client, Record{N: 1}))
	require.Equal(t, []int{1}, report())

	held := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.senders[b.Addr()]
		return ok
	}
	for held() { // polling the proc's state, with the test's deadline
		require.NoError(t, ctx.Err(), "the idle channel to b is still open")
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, rec.Ref().Send(client, Record{N: 2}))
	require.Equal(t, []int{1, 2}, report(), "after the channel was closed")
}
