package mesh

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// Casting fans a message out through a tree of comm actors, one per proc,
// instead of the caller sending one message per actor. The tree hangs from
// the caster, over the mesh's procs in rank order: with fan-out k, the
// caster sends to procs 0 … r-1 and proc n forwards to procs r+kn …
// r+kn+k-1. r, the roots, is one for a mesh of up to k+1 procs, whose
// first proc forwards to the rest, as Monarch's rank 0 comm actor does;
// for larger meshes it grows to k, so that the caster does the first
// level's work itself and casts reach their procs a hop sooner, while it
// never sends one message per actor. A cast to a slice walks the same
// tree and skips subtrees holding no selected rank, and a dead proc's
// parent forwards to its children in its place (castDead). Because
// every cast from one sender to one mesh follows the same edges, and each
// edge is one FIFO channel between the same two actors, per-sender order
// holds at every receiving actor.

// CommActorName is the comm actor's name on every mesh proc.
const CommActorName = "comm"

// Headers a cast delivery carries; CastInfoOf reads them.
const (
	headerRank   = "mesh.rank"
	headerExtent = "mesh.extent"
	headerSender = "mesh.sender"
)

// EnvCastFanout sets the cast tree's fan-out (default 8), as of the
// moment a mesh or a view of it is made.
const EnvCastFanout = "ACTORMESH_CAST_FANOUT"

const defaultFanout = 8

// maxFanout bounds a cast's fan-out, from the environment or the wire, so
// that no tree arithmetic on a hostile cast can overflow.
const maxFanout = 1 << 16

// castMsg is one hop of a cast. The tree's nodes are the procs listed in
// Procs, one text ProcID per line, or, when Procs is empty, in the table
// installed on every comm under TableKey (casttable.go). A hop forwards
// the bytes it received with only Node changed (see castwire.go), so no
// hop pays for encoding the cast again. Ranks[i] is node i's rank in the
// cast's view, or -1 when the cast skips it.
type castMsg struct {
	Mesh     string
	Procs    []byte
	TableKey string
	Ranks    []int
	Extent   string
	Node     int
	Fanout   int
	Sender   core.ActorID
	Type     string
	Body     []byte

	senderText string // Sender as received, parsed only when needed
}

// castTypeName is castMsg's registered name.
const castTypeName = "mesh.Cast"

func init() {
	core.RegisterMessage[castMsg](castTypeName)
	core.RegisterActor("mesh.CommActor", func(struct{}) (*commActor, error) { return &commActor{}, nil })
}

func castFanout() int {
	if v, err := strconv.Atoi(os.Getenv(EnvCastFanout)); err == nil && v >= 2 && v <= maxFanout {
		return v
	}
	return defaultFanout
}

// senderID is who cast m.
func (m *castMsg) senderID() core.ActorID {
	if m.Sender.IsZero() && m.senderText != "" {
		m.Sender, _ = core.ParseActorID(m.senderText)
	}
	return m.Sender
}

// startComm starts the proc's comm: a client instance named CommActorName
// whose casts and undeliverables are handled inline, on the goroutine that
// delivers them (a connection's reader), so a cast crosses a proc with no
// goroutine hand-off but the one to its target actor.
func startComm(p *core.Proc) error {
	inst, _, err := p.Instance(CommActorName)
	if err != nil {
		return err
	}
	self := p.ID().String()
	var lastCast atomic.Pointer[castMemo] // see castMemo
	tables := &castTables{}
	if err := core.BindInlineHandler(inst, core.ActorPort, func(m core.InlineMessage) error {
		var cm castMsg
		var raw []byte
		var table *castTable
		var headers map[string]string
		switch v := m.Value.(type) {
		case castMsg:
			cm = v
			raw = appendCast(nil, &cm)
			t, err := tables.resolve(&cm)
			if err != nil {
				return err
			}
			table, headers = t, castHeaders(&cm)
		case installCastTable:
			return tables.handleInstall(inst, v)
		case nil:
			switch m.Type {
			case castTypeName:
			case installCastTableType:
				v, err := core.DecodeMessage(m.Type, m.Body)
				if err != nil {
					return err
				}
				return tables.handleInstall(inst, v.(installCastTable))
			default:
				return fmt.Errorf("mesh: comm: unexpected message type %q", m.Type)
			}
			last := lastCast.Load()
			var memo *castMemo
			if err := parseCastMemo(m.Body, &cm, last, &memo, tables); err != nil {
				return err
			}
			raw, table, headers = m.Body, memo.table, memo.headersFor(&cm)
			if memo != last {
				lastCast.Store(memo)
			}
		default:
			return fmt.Errorf("mesh: comm: unexpected message %T", m.Value)
		}
		return relayCast(inst, self, &cm, raw, &m, table, headers)
	}); err != nil {
		return err
	}
	return core.BindInlineHandler(inst, core.UndeliverablePort, func(m core.InlineMessage) error {
		u, ok := m.Value.(core.Undeliverable)
		if !ok {
			v, err := core.DecodeMessage(m.Type, m.Body)
			if err != nil {
				logger().Warn("malformed undeliverable", "error", err)
				return nil
			}
			if u, ok = v.(core.Undeliverable); !ok {
				logger().Warn("malformed undeliverable", "type", m.Type)
				return nil
			}
		}
		return returnCast(inst, u)
	})
}

// relayCast forwards a cast down the tree and delivers it locally. raw is
// cm encoded; it is patched in place for each child (a send to another
// proc encodes its envelope at once, so the bytes are not retained). in,
// when the cast arrived inline, lets the local delivery run the target
// actor on the delivering goroutine. table is cm's proc table, headers
// those of the local delivery.
func relayCast(inst *core.Instance, self string, cm *castMsg, raw []byte, in *core.InlineMessage, table *castTable, headers map[string]string) error {
	var buf [16]int
	hops, err := castHops(buf[:0], cm, table, self)
	if err != nil {
		return err
	}
	// Forward first: the subtrees start while this node delivers.
	for _, c := range hops {
		setCastNode(raw, c)
		if err := inst.PostEncoded(commRef(table.procs[c]).ID.Port(core.ActorPort), castTypeName, raw, nil); err != nil {
			return err
		}
	}
	node := cm.Node
	setCastNode(raw, node)
	if cm.Ranks[node] >= 0 {
		dest := inst.Proc().ID().ActorID(cm.Mesh, 0).Port(core.ActorPort)
		if in != nil {
			return in.Relay(inst, dest, cm.Type, cm.Body, headers)
		}
		return inst.PostEncoded(dest, cm.Type, cm.Body, headers)
	}
	return nil
}

// castHops appends to dst the nodes that cm, arriving at the proc self,
// goes on to. A cast comes from the wire, so all of it is checked against
// table before anything is sent: a malformed one is refused whole.
func castHops(dst []int, cm *castMsg, table *castTable, self string) ([]int, error) {
	n := len(table.lines)
	node := cm.Node
	if node < 0 || node >= n || len(cm.Ranks) != n || cm.Fanout < 2 || cm.Fanout > maxFanout {
		return nil, fmt.Errorf("mesh: comm: malformed cast (node %d of %d, fan-out %d)", node, n, cm.Fanout)
	}
	if l := table.lines[node]; l != self {
		return nil, fmt.Errorf("mesh: comm: cast for node %d (%s) reached %s", node, l, self)
	}
	if cm.Ranks[node] == castDead {
		return nil, fmt.Errorf("mesh: comm: malformed cast: node %d (%s) is marked dead", node, self)
	}
	dst = castTargets(dst, cm.Ranks, cm.Fanout, node)
	for _, c := range dst {
		if table.lines[c] == self {
			return nil, fmt.Errorf("mesh: comm: malformed cast: node %d is this proc too", c)
		}
		if err := table.procErrs[c]; err != nil {
			return nil, fmt.Errorf("mesh: comm: malformed cast: %w", err)
		}
	}
	return dst, nil
}

// castHeaders are the headers of a cast's delivery to node's actor; nil
// for a node outside the cast, which relayCast then refuses.
func castHeaders(cm *castMsg) map[string]string {
	if cm.Node < 0 || cm.Node >= len(cm.Ranks) {
		return nil
	}
	sender := cm.senderText
	if sender == "" {
		sender = cm.Sender.String()
	}
	return map[string]string{
		headerRank:   strconv.Itoa(cm.Ranks[cm.Node]),
		headerExtent: cm.Extent,
		headerSender: sender,
	}
}

// headersFor returns the headers of cm's delivery: the memo's own when cm
// is the cast it memoizes for its node. Deliveries share them: nothing
// writes to a delivery's headers.
func (m *castMemo) headersFor(cm *castMsg) map[string]string {
	if m != nil && m.headers != nil && m.headersNode == cm.Node {
		return m.headers
	}
	return castHeaders(cm)
}

// returnCast returns a cast that could not be forwarded or delivered to
// whoever cast it.
func returnCast(s core.Sender, u core.Undeliverable) error {
	sender := core.ActorID{}
	if v, ok := u.Headers[headerSender]; ok {
		sender, _ = core.ParseActorID(v)
	} else if u.Type == castTypeName {
		if cm, ok := u.Message.(castMsg); ok {
			sender = cm.senderID()
		} else {
			var cm castMsg
			if parseCast(u.Body, &cm) == nil {
				sender = cm.senderID()
			}
		}
	}
	if sender.IsZero() {
		logger().Warn("cast undeliverable", "dest", u.Dest, "reason", u.Reason)
		return nil
	}
	return core.PortRef[core.Undeliverable]{ID: sender.Port(core.UndeliverablePort)}.Send(s, u)
}

// commActor is the comm as an ordinary actor, for procs that spawn it by
// type name; StartProcAgent starts the inline comm instead.
type commActor struct{ tables castTables }

func (a *commActor) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case castMsg:
		table, err := a.tables.resolve(&m)
		if err != nil {
			return err
		}
		return relayCast(cx.Instance, cx.Proc().ID().String(), &m, appendCast(nil, &m), nil, table, castHeaders(&m))
	case installCastTable:
		return a.tables.handleInstall(cx, m)
	}
	return fmt.Errorf("mesh: comm actor: unexpected message %T", msg)
}

// HandleUndeliverable returns a cast that could not be forwarded or
// delivered to whoever cast it.
func (*commActor) HandleUndeliverable(cx *core.Context, u core.Undeliverable) error {
	return returnCast(cx, u)
}

func commRef(p core.ProcID) core.ActorRef { return core.ActorRef{ID: p.ActorID(CommActorName, 0)} }

// castDead marks a dead proc's node in castMsg.Ranks. The node keeps its
// place in the tree and its parent forwards to its children instead, so
// that a proc's death changes no other node's path: a cast sent after it
// cannot overtake an earlier one on a path that no longer exists.
const castDead = -2

// castRoot is the caster's place in the tree, above the roots.
const castRoot = -1

// castRoots is how many procs of a mesh of n the caster sends a cast to:
// n/(k+1) rounded up, between 1 and k.
func castRoots(n, fanout int) int { return max(1, min(fanout, (n+fanout)/(fanout+1))) }

// castChildren returns the range [first, end) of node's children in a
// tree over n procs; node may be castRoot.
func castChildren(n, fanout, node int) (first, end int) {
	r := castRoots(n, fanout)
	if node == castRoot {
		return 0, min(r, n)
	}
	first = r + fanout*node
	return first, min(first+fanout, n)
}

// castTargets appends to dst the nodes a cast at node (castRoot: the
// caster) forwards to: its children, each dead one replaced by its own
// targets, leaving out the subtrees that hold no selected rank.
func castTargets(dst, ranks []int, fanout, node int) []int {
	first, end := castChildren(len(ranks), fanout, node)
	for c := first; c < end; c++ {
		switch {
		case !subtreeSelected(ranks, fanout, c):
		case ranks[c] == castDead:
			dst = castTargets(dst, ranks, fanout, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// subtreeSelected reports whether the subtree rooted at node holds a
// selected rank.
func subtreeSelected(ranks []int, fanout, node int) bool {
	if ranks[node] >= 0 {
		return true
	}
	first, end := castChildren(len(ranks), fanout, node)
	for c := first; c < end; c++ {
		if subtreeSelected(ranks, fanout, c) {
			return true
		}
	}
	return false
}

// CastInfo is what a cast tells its receiver about where it landed.
type CastInfo struct {
	// Rank and Point are the receiver's position in the cast's view.
	Rank   int
	Point  alloc.Point
	Extent alloc.Extent
	// Sender is who cast the message (cx.Sender() is the comm actor).
	Sender core.ActorID
}

// CastInfoOf returns the cast position of the message being handled, or
// false if it did not arrive by a cast.
func CastInfoOf(cx *core.Context) (CastInfo, bool) {
	rs, ok := cx.Header(headerRank)
	if !ok {
		return CastInfo{}, false
	}
	rank, err := strconv.Atoi(rs)
	if err != nil {
		return CastInfo{}, false
	}
	ext, _ := cx.Header(headerExtent)
	extent, err := alloc.ParseExtent(ext)
	if err != nil {
		return CastInfo{}, false
	}
	point, err := extent.PointOfRank(rank)
	if err != nil {
		return CastInfo{}, false
	}
	s, _ := cx.Header(headerSender)
	sender, _ := core.ParseActorID(s)
	return CastInfo{Rank: rank, Point: point, Extent: extent, Sender: sender}, true
}
