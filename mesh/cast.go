package mesh

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// Casting fans a message out through a tree of comm actors, one per proc,
// instead of the caller sending one message per actor. The tree is a
// k-ary heap over the mesh's live procs in rank order; a cast to a slice
// walks the same tree and skips subtrees holding no selected rank. Because
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

// EnvCastFanout sets the cast tree's fan-out (default 8).
const EnvCastFanout = "ACTORMESH_CAST_FANOUT"

const defaultFanout = 8

// castMsg is one hop of a cast. The tree's nodes are the procs listed in
// Procs, one text ProcID per line: a node parses only the lines of the
// children it forwards to, and a hop forwards the list as it came, so no
// hop pays for decoding or encoding every proc of a large mesh. Ranks[i]
// is node i's rank in the cast's view, or -1 when the cast skips it.
type castMsg struct {
	Mesh   string
	Procs  []byte
	Ranks  []int
	Extent string
	Node   int
	Fanout int
	Sender core.ActorID
	Type   string
	Body   []byte
}

func init() {
	core.RegisterMessage[castMsg]("mesh.Cast")
	core.RegisterActor("mesh.CommActor", func(struct{}) (*commActor, error) { return &commActor{}, nil })
}

func castFanout() int {
	if v, err := strconv.Atoi(os.Getenv(EnvCastFanout)); err == nil && v >= 2 {
		return v
	}
	return defaultFanout
}

// commActor forwards casts down the tree and delivers them locally.
type commActor struct{}

func (commActor) Handle(cx *core.Context, msg any) error {
	m, ok := msg.(castMsg)
	if !ok {
		return fmt.Errorf("mesh: comm actor: unexpected message %T", msg)
	}
	procs := procLines(m.Procs)
	if m.Node < 0 || m.Node >= len(procs) || len(m.Ranks) != len(procs) || m.Fanout < 2 {
		return fmt.Errorf("mesh: comm actor: malformed cast (node %d of %d)", m.Node, len(procs))
	}
	// Forward first: the subtrees start while this node delivers.
	node := m.Node
	for c := m.Fanout*node + 1; c <= m.Fanout*node+m.Fanout && c < len(procs); c++ {
		if !subtreeSelected(m.Ranks, m.Fanout, c) {
			continue
		}
		child, err := core.ParseProcID(procs[c])
		if err != nil {
			return fmt.Errorf("mesh: comm actor: malformed cast: %w", err)
		}
		m.Node = c
		if err := commRef(child).Send(cx, m); err != nil {
			return err
		}
	}
	if r := m.Ranks[node]; r >= 0 {
		headers := map[string]string{
			headerRank:   strconv.Itoa(r),
			headerExtent: m.Extent,
			headerSender: m.Sender.String(),
		}
		self := cx.Proc().ID()
		if procs[node] != self.String() {
			return fmt.Errorf("mesh: comm actor: cast for node %d (%s) reached %s", node, procs[node], self)
		}
		dest := self.ActorID(m.Mesh, 0).Port(core.ActorPort)
		if err := cx.PostEncoded(dest, m.Type, m.Body, headers); err != nil {
			return err
		}
	}
	return nil
}

// HandleUndeliverable returns a cast that could not be forwarded or
// delivered to whoever cast it.
func (commActor) HandleUndeliverable(cx *core.Context, u core.Undeliverable) error {
	sender := core.ActorID{}
	if s, ok := u.Headers[headerSender]; ok {
		sender, _ = core.ParseActorID(s)
	} else if u.Type == "mesh.Cast" {
		if v, err := core.DecodeMessage(u.Type, u.Body); err == nil {
			sender = v.(castMsg).Sender
		}
	}
	if sender.IsZero() {
		logger().Warn("cast undeliverable", "dest", u.Dest, "reason", u.Reason)
		return nil
	}
	return core.PortRef[core.Undeliverable]{ID: sender.Port(core.UndeliverablePort)}.Send(cx, u)
}

// procLines splits a cast's proc table into its lines.
func procLines(table []byte) []string {
	return strings.Split(strings.TrimSuffix(string(table), "\n"), "\n")
}

func commRef(p core.ProcID) core.ActorRef { return core.ActorRef{ID: p.ActorID(CommActorName, 0)} }

// subtreeSelected reports whether the subtree rooted at node holds a
// selected rank.
func subtreeSelected(ranks []int, fanout, node int) bool {
	if node >= len(ranks) {
		return false
	}
	if ranks[node] >= 0 {
		return true
	}
	for c := fanout*node + 1; c <= fanout*node+fanout; c++ {
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
