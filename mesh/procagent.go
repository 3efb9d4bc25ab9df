// Package mesh builds meshes of procs and actors on top of alloc: hosts,
// agents, proc and actor meshes, casting.
package mesh

import (
	"context"
	"fmt"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// ProcAgentName is the agent's actor name on every proc.
const ProcAgentName = alloc.DefaultAgentName

// ProcAgentType is the agent's registered actor type.
const ProcAgentType = alloc.DefaultAgentType

// DefaultStopAllTimeout bounds StopAll when the request gives no timeout.
const DefaultStopAllTimeout = 10 * time.Second

// Messages of the proc agent.
type (
	// SpawnActor spawns a root actor of a registered type. It is idempotent
	// by name while the actor runs: a second request for its name answers
	// its id (or an error if it asks for another type). Once the actor has
	// stopped, or its spawn failed, the name is free for a new one.
	SpawnActor struct {
		Name   string
		Type   string
		Params []byte // msgpack-encoded constructor parameters
		Reply  core.PortRef[SpawnResult]
		// Rank is the actor's rank in its mesh, reported with its events.
		Rank int
		// Supervisor, if set, receives an ActorEvent when the actor stops.
		Supervisor core.PortRef[ActorEvent]
	}
	// SpawnResult answers SpawnActor; Err is empty on success.
	SpawnResult struct {
		Actor core.ActorID
		Err   string
	}
	// GetActorStatus asks for the status of an actor spawned by name.
	GetActorStatus struct {
		Name  string
		Reply core.PortRef[ActorStatus]
	}
	// ActorStatus answers GetActorStatus. Exists is false for a name the
	// agent never spawned.
	ActorStatus struct {
		Name   string
		Exists bool
		Actor  core.ActorID
		Status core.Status
		// Err is the spawn error or the failure that stopped the actor.
		Err string
	}
	// StopActor stops an actor spawned by name; the reply is "" once it
	// stopped, or why it could not be stopped.
	StopActor struct {
		Name   string
		Reason string
		Reply  core.PortRef[string]
	}
	// StopAll stops every actor the agent spawned and answers the proc's
	// exit code: 0, or 1 if any actor failed (or did not stop in time).
	StopAll struct {
		Reason  string
		Timeout time.Duration
		Reply   core.PortRef[int]
	}
	// Ping answers the proc's id: a liveness probe.
	Ping struct {
		Reply core.PortRef[core.ProcID]
	}
)

func init() {
	core.RegisterMessage[SpawnActor]("mesh.SpawnActor")
	core.RegisterMessage[SpawnResult]("mesh.SpawnResult")
	core.RegisterMessage[GetActorStatus]("mesh.GetActorStatus")
	core.RegisterMessage[ActorStatus]("mesh.ActorStatus")
	core.RegisterMessage[StopActor]("mesh.StopActor")
	core.RegisterMessage[StopAll]("mesh.StopAll")
	core.RegisterMessage[Ping]("mesh.Ping")
	core.RegisterActor(ProcAgentType, func(struct{}) (*ProcAgent, error) { return NewProcAgent(), nil })
}

// ProcAgent manages the actors of one proc on behalf of a mesh: it spawns
// them by type name, reports their status and stops them.
type ProcAgent struct {
	actors map[string]*spawned
	opts   ProcAgentOptions
}

// ProcAgentOptions configures a ProcAgent.
type ProcAgentOptions struct {
	// OnStopAll is called with the exit code once a StopAll finished, so
	// the process hosting the proc can exit with it. It must not block.
	OnStopAll func(code int)
}

type spawned struct {
	h          *core.ActorHandle // nil if the spawn failed
	err        string
	typ        string
	rank       int
	supervisor core.PortRef[ActorEvent]
	stopping   bool // asked to stop: its name is not free until it has
}

// rootEvent carries a root actor's supervision event from the proc to its
// agent, which forwards it to the actor's mesh owner.
type rootEvent struct{ ev core.SupervisionEvent }

// NewProcAgent returns an agent; spawn it as ProcAgentName.
func NewProcAgent(opts ...ProcAgentOptions) *ProcAgent {
	a := &ProcAgent{actors: map[string]*spawned{}}
	if len(opts) > 0 {
		a.opts = opts[0]
	}
	return a
}

// StartProcAgent spawns the agent on p, makes it the proc's supervisor
// (so that root actors' stops reach the mesh owner), and starts the comm
// actor that relays casts.
func StartProcAgent(p *core.Proc, opts ...ProcAgentOptions) (core.ActorID, error) {
	h, err := p.Spawn(ProcAgentName, NewProcAgent(opts...))
	if err != nil {
		return core.ActorID{}, fmt.Errorf("mesh: starting the proc agent: %w", err)
	}
	agent, _, err := p.Instance("proc_agent_events")
	if err != nil {
		return core.ActorID{}, fmt.Errorf("mesh: starting the proc agent: %w", err)
	}
	p.SetSupervisor(func(ev core.SupervisionEvent) {
		if ev.Actor == h.ID() {
			return
		}
		h.Ref().Send(agent, rootEvent{ev: ev})
	})
	if err := startComm(p); err != nil {
		return core.ActorID{}, fmt.Errorf("mesh: starting the comm actor: %w", err)
	}
	return h.ID(), nil
}

// Handle dispatches the agent's messages.
func (a *ProcAgent) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case SpawnActor:
		return m.Reply.Send(cx, a.spawn(cx, m))
	case GetActorStatus:
		return m.Reply.Send(cx, a.status(m.Name))
	case StopActor:
		a.stopOne(cx, m)
	case StopAll:
		a.stopAll(cx, m)
	case Ping:
		return m.Reply.Send(cx, cx.Proc().ID())
	case rootEvent:
		a.forward(cx, m.ev)
	default:
		return fmt.Errorf("mesh: proc agent: unexpected message %T", msg)
	}
	return nil
}

// HandleUndeliverable drops replies whose requester went away: that is
// the requester's problem, not a reason for the agent to fail.
func (a *ProcAgent) HandleUndeliverable(cx *core.Context, u core.Undeliverable) error {
	return nil
}

func (a *ProcAgent) spawn(cx *core.Context, m SpawnActor) SpawnResult {
	if s, ok := a.actors[m.Name]; ok && s.h != nil {
		if !s.h.Status().Terminal() {
			if s.stopping {
				// Handing it back would bind a new mesh to an actor about
				// to end, with no one told when it does.
				return SpawnResult{Err: fmt.Sprintf("actor %q is still stopping; spawn again once it has stopped", m.Name)}
			}
			if s.typ != m.Type {
				return SpawnResult{Err: fmt.Sprintf("actor %q is already running as a %s, not a %s", m.Name, s.typ, m.Type)}
			}
			return SpawnResult{Actor: s.h.ID()}
		}
		// A stopped actor frees its name, as a failed spawn does: spawn
		// anew. The proc lets go of the name just before Wait returns.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.h.Wait(ctx)
		cancel()
		if err != nil {
			return SpawnResult{Err: fmt.Sprintf("actor %q is still stopping: %v", m.Name, err)}
		}
	}
	h, err := cx.Proc().SpawnType(m.Name, m.Type, m.Params)
	if err != nil {
		a.actors[m.Name] = &spawned{err: err.Error(), typ: m.Type, rank: m.Rank}
		return SpawnResult{Err: err.Error()}
	}
	a.actors[m.Name] = &spawned{h: h, typ: m.Type, rank: m.Rank, supervisor: m.Supervisor}
	return SpawnResult{Actor: h.ID()}
}

// forward tells an actor's mesh owner that it stopped.
func (a *ProcAgent) forward(cx *core.Context, ev core.SupervisionEvent) {
	s, ok := a.actors[ev.Actor.Name]
	if !ok || s.h == nil || s.h.ID() != ev.Actor {
		if ev.Failed() {
			logger().Error("actor failed", "actor", ev.Actor, "error", ev.Err)
		}
		return
	}
	// Owners act on failures, and on actors that stopped of their own
	// accord: the rank is gone either way. A stop the agent was asked for
	// is the owner's own doing.
	if s.supervisor == (core.PortRef[ActorEvent]{}) || (!ev.Failed() && s.stopping) {
		return
	}
	if err := s.supervisor.Send(cx, ActorEvent{Mesh: ev.Actor.Name, Rank: s.rank, Event: ev}); err != nil {
		logger().Warn("cannot forward supervision event", "actor", ev.Actor, "error", err)
	}
}

func (a *ProcAgent) status(name string) ActorStatus {
	s, ok := a.actors[name]
	if !ok {
		return ActorStatus{Name: name}
	}
	if s.h == nil {
		return ActorStatus{Name: name, Exists: true, Status: core.StatusFailed, Err: s.err}
	}
	st := ActorStatus{Name: name, Exists: true, Actor: s.h.ID(), Status: s.h.Status()}
	if st.Status.Terminal() {
		if ev, err := s.h.Wait(context.Background()); err == nil && ev.Failed() {
			st.Err = ev.String()
		}
	}
	return st
}

// stopOne waits for the stop off the agent's loop, so the agent keeps
// answering while a slow actor drains.
func (a *ProcAgent) stopOne(cx *core.Context, m StopActor) {
	s, ok := a.actors[m.Name]
	if !ok || s.h == nil {
		m.Reply.Send(cx, fmt.Sprintf("mesh: no actor named %q on %s", m.Name, cx.Proc().ID()))
		return
	}
	reason := m.Reason
	if reason == "" {
		reason = "stop requested"
	}
	s.stopping = true
	s.h.Stop(reason)
	inst := cx.Instance
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultStopAllTimeout)
		defer cancel()
		answer := ""
		if _, err := s.h.Wait(ctx); err != nil {
			answer = err.Error()
		}
		m.Reply.Send(inst, answer)
	}()
}

func (a *ProcAgent) stopAll(cx *core.Context, m StopAll) {
	reason := m.Reason
	if reason == "" {
		reason = "stop all"
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultStopAllTimeout
	}
	var handles []*core.ActorHandle
	for _, s := range a.actors {
		if s.h != nil {
			s.stopping = true
			s.h.Stop(reason)
			handles = append(handles, s.h)
		}
	}
	inst := cx.Instance
	onStopAll := a.opts.OnStopAll
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		code := 0
		for _, h := range handles {
			ev, err := h.Wait(ctx)
			if err != nil || ev.Failed() {
				code = 1
			}
		}
		if m.Reply != (core.PortRef[int]{}) {
			m.Reply.Send(inst, code)
		}
		if onStopAll != nil {
			onStopAll(code)
		}
	}()
}
