package mesh

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
	"github.com/stretchr/testify/require"
)

// Casts through real comms and real unix sockets, but procs of this
// process: what a hop does, without the OS processes of tests/.

// benchGetID is testactor.GetActorID's shape, for tests that cannot
// import testactor (it imports this package).
type benchGetID struct{ Reply core.PortRef[core.ActorID] }

type benchIDActor struct{}

func (benchIDActor) Handle(cx *core.Context, msg any) error {
	m, ok := msg.(benchGetID)
	if !ok {
		return fmt.Errorf("unexpected %T", msg)
	}
	return m.Reply.Send(cx, cx.Instance.ID())
}

func init() { core.RegisterMessage[benchGetID]("mesh.benchGetID") }

// castProcs are n procs, each with its agent, comm and a benchIDActor
// named "a", and a client instance to cast from.
type castProcs struct {
	procs []*core.Proc
	inst  *core.Instance
	table []byte // the procs' cast table
}

func startCastProcs(tb testing.TB, n int) *castProcs {
	cp := &castProcs{}
	var all []*core.Proc
	tb.Cleanup(func() {
		for _, p := range all {
			shutdownProc(p)
		}
	})
	var table strings.Builder
	for i := range n {
		p, err := core.DirectProc(transport.Unix.Any(), "p"+strconv.Itoa(i), nil)
		require.NoError(tb, err)
		all = append(all, p)
		_, err = StartProcAgent(p)
		require.NoError(tb, err)
		_, err = p.Spawn("a", benchIDActor{})
		require.NoError(tb, err)
		table.WriteString(p.ID().String())
		table.WriteByte('\n')
	}
	client, err := core.DirectProc(transport.Unix.Any(), "client", nil)
	require.NoError(tb, err)
	all = append(all, client)
	cp.inst, _, err = client.Instance("caller")
	require.NoError(tb, err)
	cp.procs, cp.table = all[:n], []byte(table.String())
	return cp
}

// install installs the table on the comms of procs, as a mesh's Spawn
// does, and waits for their answers.
func (cp *castProcs) install(tb testing.TB, ctx context.Context, procs []*core.Proc) {
	port, rx := core.OpenPort[string](cp.inst)
	defer rx.Close()
	for _, p := range procs {
		msg := installCastTable{Key: castTableKey(cp.table), Procs: cp.table, Reply: port.Bind()}
		require.NoError(tb, commRef(p.ID()).Send(cp.inst, msg))
	}
	for range procs {
		refusal, err := rx.Recv(ctx)
		require.NoError(tb, err)
		require.Empty(tb, refusal)
	}
}

// cast casts benchGetID to every proc through the tree, the table named
// by its key if byKey, and returns the receiver of the replies.
func (cp *castProcs) cast(tb testing.TB, fanout int, byKey bool) *core.PortReceiver[core.ActorID] {
	port, rx := core.OpenPort[core.ActorID](cp.inst)
	typeName, body, err := core.EncodeMessage(benchGetID{Reply: port.Bind()})
	require.NoError(tb, err)
	ranks := make([]int, len(cp.procs))
	for i := range ranks {
		ranks[i] = i
	}
	cm := castMsg{Mesh: "a", Ranks: ranks, Extent: "x=" + strconv.Itoa(len(ranks)),
		Fanout: fanout, Sender: cp.inst.ID(), Type: typeName, Body: body}
	if byKey {
		cm.TableKey = castTableKey(cp.table)
	} else {
		cm.Procs = cp.table
	}
	raw := appendCast(nil, &cm)
	for _, node := range castTargets(nil, ranks, fanout, castRoot) { // as castEncoded
		setCastNode(raw, node)
		root := commRef(cp.procs[node].ID()).ID.Port(core.ActorPort)
		require.NoError(tb, cp.inst.PostEncoded(root, castTypeName, raw, nil))
	}
	return rx
}

// Casts reach every proc whether they carry their table or name an
// installed one; a proc that lacks the named table returns the cast to
// its caster, saying why, and the rest of the tree is unaffected.
func TestCastByTableKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp := startCastProcs(t, 3) // fan-out 2: node 0 forwards to 1 and 2
	want := make([]core.ActorID, 3)
	for i, p := range cp.procs {
		want[i] = p.ID().ActorID("a", 0)
	}
	gather := func(rx *core.PortReceiver[core.ActorID], n int) []core.ActorID {
		var got []core.ActorID
		for range n {
			id, err := rx.Recv(ctx)
			require.NoError(t, err)
			got = append(got, id)
		}
		return got
	}

	require.ElementsMatch(t, want, gather(cp.cast(t, 2, false), 3), "carrying the table")

	cp.install(t, ctx, cp.procs[:2]) // not on node 2
	rx := cp.cast(t, 2, true)
	require.ElementsMatch(t, want[:2], gather(rx, 2))
	u, err := cp.inst.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	require.Equal(t, commRef(cp.procs[2].ID()).ID.Port(core.ActorPort), u.Dest)
	require.Contains(t, u.Reason, "no cast table installed")

	cp.install(t, ctx, cp.procs[2:])
	require.ElementsMatch(t, want, gather(cp.cast(t, 2, true), 3), "by key, installed everywhere")
}

// A spawn that fails abandons its table install; the next one installs
// the table, and once it is installed no install starts again.
func TestCastTableInstallAfterAbandon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp := startCastProcs(t, 2)
	pm := &ProcMesh{name: "p", health: newHealth()}
	for _, p := range cp.procs {
		pm.procs = append(pm.procs, procRef{id: p.ID()})
	}
	ti := &castTableInstall{raw: cp.table, key: castTableKey(cp.table)}

	ti.startInstall(cp.inst, pm).abandon()
	require.False(t, ti.installed.Load())
	require.False(t, ti.installing.Load(), "abandoned, yet an install is still under way")

	require.NoError(t, ti.startInstall(cp.inst, pm).wait(ctx))
	require.True(t, ti.installed.Load())
	require.Nil(t, ti.startInstall(cp.inst, pm).ti, "installed, yet another install started")
	rx := cp.cast(t, 2, true)
	for range cp.procs {
		_, err := rx.Recv(ctx)
		require.NoError(t, err, "a cast by the installed table's key")
	}
}

// A cast whose fan-out no tree could use, or whose node is outside it,
// comes back to its caster as malformed, rather than taking a comm down,
// and the comms go on relaying.
func TestCastHostileFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp := startCastProcs(t, 3)
	cp.cast(t, 1<<62, false).Close()
	u, err := cp.inst.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	require.Contains(t, u.Reason, "malformed cast")

	// A node outside the cast's ranks (bytes patched on the wire).
	port, _ := core.OpenPort[core.ActorID](cp.inst)
	typeName, body, err := core.EncodeMessage(benchGetID{Reply: port.Bind()})
	require.NoError(t, err)
	cm := castMsg{Mesh: "a", Ranks: []int{0, 1, 2}, Extent: "x=3", Fanout: 2, Sender: cp.inst.ID(), Type: typeName, Body: body, Procs: cp.table}
	raw := appendCast(nil, &cm)
	setCastNode(raw, 99)
	require.NoError(t, cp.inst.PostEncoded(commRef(cp.procs[0].ID()).ID.Port(core.ActorPort), castTypeName, raw, nil))
	u, err = cp.inst.Undeliverables().Recv(ctx)
	require.NoError(t, err)
	require.Contains(t, u.Reason, "malformed cast")

	rx := cp.cast(t, 2, false)
	defer rx.Close()
	for range cp.procs {
		_, err := rx.Recv(ctx)
		require.NoError(t, err)
	}
}

// BenchmarkCastHopsInProcess casts through the comm actors of 16 procs
// in this process, over unix sockets, and gathers a reply from each: the
// whole per-hop path of BenchmarkCastGather64 (tests/) but for the OS
// processes, so that allocs/op and a CPU profile show what a hop costs in
// user space. Divide by 16 for one proc's share.
func BenchmarkCastHopsInProcess(b *testing.B) {
	const n = 16
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp := startCastProcs(b, n)
	cp.install(b, ctx, cp.procs) // as a mesh's caster does
	gather := func() {
		rx := cp.cast(b, defaultFanout, true)
		defer rx.Close()
		// As Call gathers: one wake-up for the lot, no spinning.
		for got := 0; got < n; {
			if _, ok, err := rx.TryRecv(); err != nil {
				b.Fatal(err)
			} else if ok {
				got++
				continue
			}
			select {
			case <-rx.NotifyAfter(n - got):
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		}
	}
	for range 100 {
		gather()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		gather()
	}
}
