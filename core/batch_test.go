package core

import (
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/actormesh/actormesh/transport"
)

// batchOf builds the frame a sender would post for Records from..to-1
// sent by client to dest, merging as Coalesce would, within limit.
func batchOf(t *testing.T, client *Instance, dest PortID, from, to, limit int) (frame []byte, merged int) {
	t.Helper()
	env := envelope{sender: client.c.id, dest: dest, value: Record{N: from}, local: true}
	mt := messageType(env.value)
	key := &batchKey{sender: env.sender, dest: dest, mt: mt}
	env.typeName = mt.name
	frame, err := encodeEnvelopeValue(&env, sizeHint(env.value), mt)
	require.NoError(t, err)
	merged = 1
	for i := from + 1; i < to; i++ {
		next := envelope{sender: client.c.id, dest: dest, value: Record{N: i}, local: true}
		var ok bool
		if frame, ok = key.merge(frame, limit, &next); !ok {
			break
		}
		merged++
	}
	return frame, merged
}

// A cell's first message to a port goes without a key, since nothing
// can merge into what comes before it; the second in a row to the same
// port and of the same type gets one, which the next ones share.
func TestBatchKeyFromSecondMessage(t *testing.T) {
	_, client := localClient(t)
	other := elsewhere
	other.Index = 7
	keyFor := func(dest PortID, v any) *batchKey {
		env := envelope{sender: client.c.id, dest: dest, value: v, local: true}
		return batchKeyFor(client.c, &env, messageType(v))
	}
	assert.Nil(t, keyFor(elsewhere, Record{N: 1}), "first to a port")
	k := keyFor(elsewhere, Record{N: 2})
	require.NotNil(t, k, "second in a row")
	assert.Equal(t, elsewhere, k.dest)
	assert.Same(t, k, keyFor(elsewhere, Record{N: 3}))

	assert.Nil(t, keyFor(other, Record{N: 4}), "first to another port")
	assert.Nil(t, keyFor(elsewhere, Ping{N: 5}), "first of another type")
	// The last key stays; a message merges only into one queued under it.
	assert.Same(t, k, keyFor(elsewhere, Record{N: 6}))
	k2 := keyFor(other, Record{N: 8})
	assert.Nil(t, k2, "the port before last is no longer remembered")
	k2 = keyFor(other, Record{N: 9})
	require.NotNil(t, k2)
	assert.Equal(t, other, k2.dest)
	assert.NotSame(t, k, k2)
}

func recordsOf(t *testing.T, frame []byte) (envs []envelope, seen []int) {
	t.Helper()
	var env envelope
	require.NoError(t, env.decodeFrame(frame, func(e *envelope) {
		envs = append(envs, *e)
		var r Record
		require.NoError(t, msgpack.Unmarshal(e.body, &r))
		seen = append(seen, r.N)
	}))
	return envs, seen
}

// elsewhere is the actor port of an actor in another proc.
var elsewhere = ProcID{Addr: transport.MustParseAddr("unix:@elsewhere"), Name: "q"}.ActorID("a", 0).Port(ActorPort)

func TestBatchFrame(t *testing.T) {
	_, client := localClient(t)
	dest := elsewhere

	frame, merged := batchOf(t, client, dest, 0, 100, 1<<20)
	require.Equal(t, 100, merged)
	assert.Equal(t, kindBatch, frame[2])
	envs, seen := recordsOf(t, frame)
	require.Len(t, seen, 100)
	for i, n := range seen {
		assert.Equal(t, i, n)
		assert.Equal(t, client.c.id, envs[i].sender)
		assert.Equal(t, dest, envs[i].dest)
		assert.Equal(t, "coretest.Record", envs[i].typeName)
	}
	_, err := decodeEnvelope(frame)
	assert.ErrorContains(t, err, "batch", "a batch is not one message")

	// A limit stops the batch, which stays whole.
	frame, merged = batchOf(t, client, dest, 0, 100, 200)
	assert.Less(t, merged, 100)
	assert.LessOrEqual(t, len(frame), 200)
	_, seen = recordsOf(t, frame)
	assert.Len(t, seen, merged)

	// A single message is an ordinary envelope.
	frame, _ = batchOf(t, client, dest, 7, 8, 1<<20)
	assert.Equal(t, kindMessage, frame[2])
	_, seen = recordsOf(t, frame)
	assert.Equal(t, []int{7}, seen)

	// Truncated batches are errors, never panics.
	frame, _ = batchOf(t, client, dest, 0, 10, 1<<20)
	for i := range frame {
		var env envelope
		assert.Error(t, env.decodeFrame(frame[:i], func(*envelope) {}), "prefix of %d bytes", i)
	}
}

// A batch the transport gives back comes back as its messages, each to
// its sender, in order.
func TestBatchUndeliverableSplit(t *testing.T) {
	p, client := localClient(t)
	frame, merged := batchOf(t, client, elsewhere, 0, 10, 1<<20)
	require.Equal(t, 10, merged)

	p.transportUndeliverable(frame, errors.New("peer gone"))
	ctx := testCtx(t)
	for i := range 10 {
		u, err := client.Undeliverables().Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, "coretest.Record", u.Type)
		assert.Contains(t, u.Reason, "peer gone")
		var r Record
		require.NoError(t, msgpack.Unmarshal(u.Body, &r))
		assert.Equal(t, i, r.N)
	}
}

// An actor stopped with a batch in its queue returns each of its
// messages; one drained handles them all, in order.
func TestBatchInMailbox(t *testing.T) {
	p, client := localClient(t)
	ctx := testCtx(t)

	enqueueBatch := func(h *ActorHandle, from, to int) {
		frame, merged := batchOf(t, client, h.ID().Port(ActorPort), from, to, 1<<20)
		require.Equal(t, to-from, merged)
		var env envelope
		r, err := env.decodeHeader(frame)
		require.NoError(t, err)
		bodies, err := batchBodies(&r.Reader)
		require.NoError(t, err)
		env.kind, env.shared, env.body = kindMessage, true, bodies
		c := p.cells.load(h.ID())
		ok, reason := c.enqueue(work{kind: workBatch, env: env})
		require.True(t, ok, reason)
	}
	block := func(h *ActorHandle) {
		started, rx := OpenOncePort[bool](client)
		require.NoError(t, h.Ref().Send(client, Block{Started: started.Bind()}))
		_, err := rx.Recv(ctx)
		require.NoError(t, err)
	}

	rel := make(chan struct{})
	stopped, err := p.Spawn("stopped", &recorder{block: rel})
	require.NoError(t, err)
	block(stopped)
	enqueueBatch(stopped, 0, 5)
	stopped.Stop("enough")
	close(rel)
	for i := range 5 {
		u, err := client.Undeliverables().Recv(ctx)
		require.NoError(t, err)
		var r Record
		require.NoError(t, msgpack.Unmarshal(u.Body, &r))
		assert.Equal(t, i, r.N)
		assert.Contains(t, u.Reason, "enough")
	}

	rel2 := make(chan struct{})
	drained, err := p.Spawn("drained", &recorder{block: rel2})
	require.NoError(t, err)
	block(drained)
	enqueueBatch(drained, 0, 50)
	require.NoError(t, drained.Ref().Send(client, Record{N: 50}))
	close(rel2)
	rep, rrx := OpenOncePort[[]int](client)
	require.NoError(t, drained.Ref().Send(client, Report{Reply: rep.Bind()}))
	seen, err := rrx.Recv(ctx)
	require.NoError(t, err)
	require.Len(t, seen, 51)
	for i, n := range seen {
		require.Equal(t, i, n)
	}
}

// Between two OS processes, with the receiving one stopped (SIGSTOP) so
// that its socket fills: the messages posted meanwhile travel in batches
// and still arrive once each, in order.
func TestBatchAcrossProcesses(t *testing.T) {
	pr, p, client := peerClient(t, nil)
	rec := pingedRec(t, pr, client)

	pid := pr.cmd.Process.Pid
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	const n = 50_000
	for i := range n {
		require.NoError(t, rec.Send(client, Record{N: i}))
	}
	s, err := p.sender(pr.id.Addr)
	require.NoError(t, err)
	coalesced := s.Coalesced()
	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	assert.Greater(t, coalesced, uint64(n/2), "most messages posted to a stopped peer were batched")

	requireRecorded(t, client, rec, n)
}
