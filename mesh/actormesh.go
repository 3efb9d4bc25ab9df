package mesh

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/vmihailenco/msgpack/v5"
)

// ActorMesh is one actor of type A on every proc of a proc mesh, or a
// slice of such a mesh. The rank-r actor is named like the mesh, pid 0, on
// the rank-r proc.
type ActorMesh[A core.Actor] struct {
	name   string
	pm     *ProcMesh
	health *actorHealth // this mesh's, even once the name is spawned again
	// The view: its extent, and for each of its ranks the rank in pm.
	extent alloc.Extent
	ranks  []int
	plan   *castPlan
}

// castPlan is what every cast to a view repeats, worked out once when the
// view is made: a mesh of a thousand procs should not cost its caster a
// thousand ids formatted and a map built per cast.
type castPlan struct {
	viewRank []int // per proc of the mesh, its rank in the view, or -1
	rankOf   map[core.ActorID]int
	extent   string
	fanout   int
}

func newActorMesh[A core.Actor](name string, pm *ProcMesh, ah *actorHealth, extent alloc.Extent, ranks []int, fanout int) *ActorMesh[A] {
	plan := &castPlan{viewRank: make([]int, len(pm.procs)), rankOf: make(map[core.ActorID]int, len(ranks)),
		extent: extent.String(), fanout: fanout}
	for r := range plan.viewRank {
		plan.viewRank[r] = -1
	}
	for v, r := range ranks {
		plan.viewRank[r] = v
		plan.rankOf[pm.procs[r].id.ActorID(name, 0)] = v
	}
	return &ActorMesh[A]{name: name, pm: pm, health: ah, extent: extent, ranks: ranks, plan: plan}
}

// Spawn starts an actor of the registered type A, built from params, on
// every proc of pm, and returns once all have started.
func Spawn[A core.Actor](ctx context.Context, inst *core.Instance, pm *ProcMesh, name string, params any) (*ActorMesh[A], error) {
	typeName, ok := core.ActorTypeName[A]()
	if !ok {
		var zero A
		return nil, fmt.Errorf("mesh: actor type %T is not registered (core.RegisterActor)", zero)
	}
	raw, err := msgpack.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("mesh: encoding parameters of %q: %w", name, err)
	}
	return spawn[A](ctx, inst, pm, name, typeName, raw)
}

// SpawnNamed is Spawn for an actor type known only by its registered name,
// with msgpack-encoded parameters: how foreign hosts, which cannot name Go
// types, spawn actors. The type need not be registered in this process,
// only in the procs' processes.
func SpawnNamed(ctx context.Context, inst *core.Instance, pm *ProcMesh, name, typeName string, params []byte) (*ActorMesh[core.Actor], error) {
	if typeName == "" {
		return nil, fmt.Errorf("mesh: spawning %q: empty actor type name", name)
	}
	return spawn[core.Actor](ctx, inst, pm, name, typeName, params)
}

func spawn[A core.Actor](ctx context.Context, inst *core.Instance, pm *ProcMesh, name, typeName string, raw []byte) (*ActorMesh[A], error) {
	if !core.ValidName(name) {
		return nil, fmt.Errorf("mesh: invalid actor mesh name %q", name)
	}
	// A dead proc's agent would never answer: say so now rather than at
	// the caller's deadline.
	if dead := pm.health.procFailures(pm.name); len(dead) > 0 {
		return nil, fmt.Errorf("mesh: spawning actor mesh %q: %w", name, &MeshError{Mesh: pm.name, Failures: dead})
	}
	ah, err := pm.health.addActorMesh(name, inst)
	if err != nil {
		return nil, fmt.Errorf("mesh: spawning actor mesh %q: %w", name, err)
	}
	// Casts to the mesh will name its procs by the table's key (see
	// castTableInstall), installed while the actors spawn. Should that
	// fail, they carry the table instead: slower, not wrong.
	install := pm.castTable().startInstall(inst, pm)
	replies := make([]*core.OnceReceiver[SpawnResult], len(pm.procs))
	// asked[rank]: the rank's agent may have started the actor.
	asked := make([]bool, len(pm.procs))
	fail := func(errs []error) (*ActorMesh[A], error) {
		for _, rx := range replies {
			if rx != nil {
				rx.Close()
			}
		}
		pm.health.removeActorMesh(name, ah)
		stopSpawned(inst, pm, name, asked)
		install.abandon()
		return nil, fmt.Errorf("mesh: spawning actor mesh %q: %w", name, errors.Join(errs...))
	}
	for rank, p := range pm.procs {
		port, rx := core.OpenOncePort[SpawnResult](inst)
		replies[rank] = rx
		msg := SpawnActor{Name: name, Type: typeName, Params: raw, Reply: port.Bind(), Rank: rank, Supervisor: pm.actorEvents.Bind()}
		if err := (core.ActorRef{ID: p.agent}).Send(inst, msg); err != nil {
			return fail([]error{fmt.Errorf("rank %d: %w", rank, err)})
		}
		asked[rank] = true
	}
	var errs []error
	for rank, rx := range replies {
		res, err := rx.Recv(ctx)
		if err == nil && res.Err != "" {
			err = errors.New(res.Err)
			asked[rank] = false // nothing started there
		}
		if err == nil && res.Actor != pm.procs[rank].id.ActorID(name, 0) {
			err = fmt.Errorf("agent spawned %s, want %s", res.Actor, pm.procs[rank].id.ActorID(name, 0))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
		}
	}
	if len(errs) > 0 {
		return fail(errs)
	}
	ranks := make([]int, len(pm.procs))
	for i := range ranks {
		ranks[i] = i
	}
	if err := install.wait(ctx); err != nil {
		logger().Debug("cast table not installed; casts will carry it", "mesh", name, "error", err)
	}
	return newActorMesh[A](name, pm, ah, pm.extent, ranks, castFanout()), nil
}

// stopSpawned stops, best effort, the actors a failed spawn may have
// started on the ranks asked, so that a failed Spawn leaves none running.
// It has its own deadline: the caller's may be what ended the spawn.
func stopSpawned(inst *core.Instance, pm *ProcMesh, name string, asked []bool) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopAllTimeout)
	defer cancel()
	replies := make([]*core.OnceReceiver[string], len(asked))
	dead := pm.health.deadProcs() // no answer would come: not worth the wait
	for rank, ok := range asked {
		if !ok || dead[rank] {
			continue
		}
		port, rx := core.OpenOncePort[string](inst)
		// Sent after the SpawnActor on the same link, so the agent sees the
		// actor (if it started) before this.
		if err := (core.ActorRef{ID: pm.procs[rank].agent}).Send(inst, StopActor{Name: name, Reason: "actor mesh spawn failed", Reply: port.Bind()}); err != nil {
			rx.Close()
			logger().Warn("cannot stop an actor of a failed spawn", "mesh", name, "rank", rank, "error", err)
			continue
		}
		replies[rank] = rx
	}
	for rank, rx := range replies {
		if rx == nil {
			continue
		}
		answer, err := rx.Recv(ctx)
		rx.Close()
		if err != nil {
			logger().Warn("cannot stop an actor of a failed spawn", "mesh", name, "rank", rank, "error", err)
		} else if answer != "" {
			logger().Debug("no actor to stop after a failed spawn", "mesh", name, "rank", rank, "answer", answer)
		}
	}
}

// ProcMesh is the proc mesh the actors live on.
func (m *ActorMesh[A]) ProcMesh() *ProcMesh { return m.pm }

// Name is the mesh's name, which is also each actor's name.
func (m *ActorMesh[A]) Name() string { return m.name }

// Extent is the view's extent.
func (m *ActorMesh[A]) Extent() alloc.Extent { return m.extent }

// Values lists the actors of the view in rank order.
func (m *ActorMesh[A]) Values() []core.ActorRef {
	refs := make([]core.ActorRef, len(m.ranks))
	for i, r := range m.ranks {
		refs[i] = core.ActorRef{ID: m.pm.procs[r].id.ActorID(m.name, 0)}
	}
	return refs
}

// Slice returns the view with dimension dim restricted to [from, to).
func (m *ActorMesh[A]) Slice(dim string, from, to int) (*ActorMesh[A], error) {
	idx := -1
	for i, l := range m.extent.Labels() {
		if l == dim {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("mesh: slicing %q: no dimension %q in %s", m.name, dim, m.extent)
	}
	size := m.extent.Sizes()[idx]
	if from < 0 || to > size || from >= to {
		return nil, fmt.Errorf("mesh: slicing %q: range [%d, %d) outside %s=%d", m.name, from, to, dim, size)
	}
	dims := m.extent.Dims()
	dims[idx].Size = to - from
	sub, err := alloc.NewExtent(dims...)
	if err != nil {
		return nil, err
	}
	ranks := make([]int, 0, sub.NumRanks())
	for r := 0; r < sub.NumRanks(); r++ {
		p, _ := sub.PointOfRank(r)
		coords := p.Coords()
		coords[idx] += from
		parent, err := m.extent.RankOfCoords(coords...)
		if err != nil {
			return nil, err
		}
		ranks = append(ranks, m.ranks[parent])
	}
	return newActorMesh[A](m.name, m.pm, m.health, sub, ranks, m.plan.fanout), nil
}

// Cast sends msg to every actor of the view through the cast tree. It
// fails at once, sending nothing, if ranks of the view have failed; the
// error (a *MeshError) names them, numbered as the view numbers them.
func (m *ActorMesh[A]) Cast(inst *core.Instance, msg any) error {
	if err := m.pm.health.check(m.health, m.ranks); err != nil {
		return err
	}
	typeName, body, err := core.EncodeMessage(msg)
	if err != nil {
		return err
	}
	return m.castEncoded(inst, typeName, body)
}

// CastEncoded is Cast for a message already encoded (see
// core.EncodeMessage): the receivers decode it by its registered type
// name, which this process need not know. Foreign hosts cast this way.
func (m *ActorMesh[A]) CastEncoded(inst *core.Instance, typeName string, body []byte) error {
	if err := m.pm.health.check(m.health, m.ranks); err != nil {
		return err
	}
	if typeName == "" {
		return fmt.Errorf("mesh: cast to %q: empty message type name", m.name)
	}
	return m.castEncoded(inst, typeName, body)
}

func (m *ActorMesh[A]) castEncoded(inst *core.Instance, typeName string, body []byte) error {
	// The tree spans the procs of the whole mesh, in rank order, so that
	// every view of the mesh shares its edges, and dead procs keep their
	// places (castDead), so that a death moves no live proc's edge.
	cm := castMsg{Mesh: m.name, Extent: m.plan.extent, Fanout: m.plan.fanout, Sender: inst.ID(), Type: typeName, Body: body,
		Ranks: slices.Clone(m.plan.viewRank)}
	if table := m.pm.castTable(); table.installed.Load() {
		cm.TableKey = table.key
	} else {
		cm.Procs = table.raw
	}
	m.pm.health.markDead(cm.Ranks)
	var buf [16]int
	roots := castTargets(buf[:0], cm.Ranks, cm.Fanout, castRoot)
	if len(roots) == 0 {
		return fmt.Errorf("mesh: cast to %q: no live proc holds a rank of the view", m.name)
	}
	raw := appendCast(nil, &cm)
	for _, node := range roots {
		setCastNode(raw, node)
		dest := commRef(m.pm.procs[node].id).ID.Port(core.ActorPort)
		if err := inst.PostEncoded(dest, castTypeName, raw, nil); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe returns a receiver of the view's failures, starting with those
// that already happened: only failures of ranks in the view, with Ranks
// numbered as the view numbers them. Close it when done.
func (m *ActorMesh[A]) Subscribe(inst *core.Instance) *core.PortReceiver[MeshFailure] {
	return m.pm.health.subscribe(m.health, inst, m.viewRanks())
}

// viewRanks maps the mesh's ranks to the view's, or is nil when the view
// is the whole mesh.
func (m *ActorMesh[A]) viewRanks() map[int]int {
	whole := len(m.ranks) == len(m.pm.procs)
	view := make(map[int]int, len(m.ranks))
	for v, r := range m.ranks {
		view[r] = v
		whole = whole && v == r
	}
	if whole {
		return nil
	}
	return view
}

// Failure reports whether rank (of the view) has failed, and how; Ranks
// is numbered as the view numbers them.
func (m *ActorMesh[A]) Failure(rank int) (MeshFailure, bool) {
	if rank < 0 || rank >= len(m.ranks) {
		return MeshFailure{}, false
	}
	f, bad := m.pm.health.failure(m.health, m.ranks[rank])
	if bad {
		f.Ranks = []int{rank}
	}
	return f, bad
}

// Stop stops the actors of the whole mesh and waits for them; later casts
// return an error.
func (m *ActorMesh[A]) Stop(ctx context.Context, inst *core.Instance) error {
	m.pm.health.markStopped(m.health)
	replies := make([]*core.OnceReceiver[string], len(m.pm.procs))
	dead := m.pm.health.deadProcs()
	var errs []error
	for rank, p := range m.pm.procs {
		if dead[rank] {
			continue
		}
		port, rx := core.OpenOncePort[string](inst)
		if err := (core.ActorRef{ID: p.agent}).Send(inst, StopActor{Name: m.name, Reason: "actor mesh stopped", Reply: port.Bind()}); err != nil {
			rx.Close()
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
			continue
		}
		replies[rank] = rx
	}
	for rank, rx := range replies {
		if rx == nil {
			continue
		}
		answer, err := rx.Recv(ctx)
		if err != nil {
			rx.Close()
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
		} else if answer != "" {
			errs = append(errs, fmt.Errorf("rank %d: %s", rank, answer))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("mesh: stopping actor mesh %q: %w", m.name, errors.Join(errs...))
	}
	return nil
}
