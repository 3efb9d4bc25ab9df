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
)

// benchGetID is testactor.GetActorID's shape, for a benchmark that cannot
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

// BenchmarkCastHopsInProcess casts through the comm actors of 16 procs
// in this process, over unix sockets, and gathers a reply from each: the
// whole per-hop path of BenchmarkCastGather64 (tests/) but for the OS
// processes, so that allocs/op and a CPU profile show what a hop costs in
// user space. Divide by 16 for one proc's share.
func BenchmarkCastHopsInProcess(b *testing.B) {
	const n = 16
	var procs []*core.Proc
	b.Cleanup(func() {
		for _, p := range procs {
			shutdownProc(p)
		}
	})
	var table strings.Builder
	for i := range n {
		p, err := core.DirectProc(transport.Unix.Any(), "p"+strconv.Itoa(i), nil)
		if err != nil {
			b.Fatal(err)
		}
		procs = append(procs, p)
		if _, err := StartProcAgent(p); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Spawn("a", benchIDActor{}); err != nil {
			b.Fatal(err)
		}
		table.WriteString(p.ID().String())
		table.WriteByte('\n')
	}
	client, err := core.DirectProc(transport.Unix.Any(), "client", nil)
	if err != nil {
		b.Fatal(err)
	}
	procs = append(procs, client)
	inst, _, err := client.Instance("caller")
	if err != nil {
		b.Fatal(err)
	}
	port, rx := core.OpenPort[core.ActorID](inst)
	typeName, body, err := core.EncodeMessage(benchGetID{Reply: port.Bind()})
	if err != nil {
		b.Fatal(err)
	}
	ranks := make([]int, n)
	for i := range ranks {
		ranks[i] = i
	}
	// As a mesh's caster does: install the table, then name it by its key.
	raw := []byte(table.String())
	key := castTableKey(raw)
	installs, installed := core.OpenPort[string](inst)
	for _, p := range procs[:n] {
		if err := commRef(p.ID()).Send(inst, installCastTable{Key: key, Procs: raw, Reply: installs.Bind()}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range n {
		if refusal, err := installed.Recv(ctx); err != nil || refusal != "" {
			b.Fatal(err, refusal)
		}
	}
	cm := castMsg{Mesh: "a", TableKey: key, Ranks: ranks, Extent: "x=" + strconv.Itoa(n),
		Fanout: defaultFanout, Sender: inst.ID(), Type: typeName, Body: body}
	root := commRef(procs[0].ID()).ID.Port(core.ActorPort)
	gather := func() {
		if err := inst.PostEncoded(root, castTypeName, appendCast(nil, &cm), nil); err != nil {
			b.Fatal(err)
		}
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
