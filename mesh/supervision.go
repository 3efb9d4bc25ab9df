package mesh

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/actormesh/actormesh/core"
)

// ActorEvent is a proc agent's report that an actor of a mesh stopped or
// failed; it goes to the mesh's owner.
type ActorEvent struct {
	Mesh  string
	Rank  int
	Event core.SupervisionEvent
}

// MeshFailure is what a mesh's owner learns when ranks of the mesh fail:
// an actor's error or panic, or the death of its proc.
type MeshFailure struct {
	Mesh  string
	Ranks []int
	// Cause is readable text: the actor's error (with panic value), or the
	// proc's exit code or signal and its last output lines.
	Cause string
	// Event is the actor's supervision event, when an actor failed.
	Event *core.SupervisionEvent
	// Proc describes the proc, when the proc died.
	Proc *ProcInfo
	Time time.Time
}

func (f MeshFailure) Error() string {
	return fmt.Sprintf("mesh: failure on mesh %q at ranks %v: %s", f.Mesh, f.Ranks, f.Cause)
}

// MeshError is returned by operations on a mesh with failed ranks.
type MeshError struct {
	Mesh     string
	Failures []MeshFailure
}

// Ranks lists the failed ranks in order.
func (e *MeshError) Ranks() []int {
	var r []int
	for _, f := range e.Failures {
		r = append(r, f.Ranks...)
	}
	sort.Ints(r)
	return slices.Compact(r)
}

func (e *MeshError) Error() string {
	causes := make([]string, 0, len(e.Failures))
	for _, f := range e.Failures {
		causes = append(causes, fmt.Sprintf("rank %v: %s", f.Ranks, firstLine(f.Cause)))
	}
	return fmt.Sprintf("mesh: mesh %q has failed ranks %v: %s", e.Mesh, e.Ranks(), strings.Join(causes, "; "))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func init() {
	core.RegisterMessage[ActorEvent]("mesh.ActorEvent")
	core.RegisterMessage[MeshFailure]("mesh.MeshFailure")
}

// health is the failure state of a proc mesh and the actor meshes on it,
// as seen by their owner. Events are pushed to it by the hosts (proc
// deaths) and the proc agents (actor failures).
type health struct {
	mu       sync.Mutex
	procDead map[int]MeshFailure // by proc rank
	actors   map[string]*actorHealth
}

type actorHealth struct {
	failed  map[int]MeshFailure // by rank
	stopped bool
	subs    []*core.PortHandle[MeshFailure]
	owner   *core.Instance
}

func newHealth() *health {
	return &health{procDead: map[int]MeshFailure{}, actors: map[string]*actorHealth{}}
}

func (h *health) addActorMesh(name string, owner *core.Instance) *actorHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	ah := &actorHealth{failed: map[int]MeshFailure{}, owner: owner}
	// Procs that died before this mesh was spawned fail its ranks at once.
	for rank, f := range h.procDead {
		f.Mesh = name
		ah.failed[rank] = f
	}
	h.actors[name] = ah
	return ah
}

// procDied fails rank on every actor mesh of the proc mesh.
func (h *health) procDied(rank int, info ProcInfo) {
	h.mu.Lock()
	f := MeshFailure{Ranks: []int{rank}, Cause: info.Cause(), Proc: &info, Time: time.Now()}
	h.procDead[rank] = f
	var publish []func()
	for name, ah := range h.actors {
		if ah.stopped {
			continue
		}
		if _, dup := ah.failed[rank]; dup {
			continue
		}
		af := f
		af.Mesh = name
		ah.failed[rank] = af
		publish = append(publish, ah.publishLocked(af))
	}
	h.mu.Unlock()
	for _, p := range publish {
		p()
	}
}

// actorFailed records an actor's failure on one rank.
func (h *health) actorFailed(ev ActorEvent) {
	if !ev.Event.Failed() {
		return
	}
	h.mu.Lock()
	ah, ok := h.actors[ev.Mesh]
	if !ok || ah.stopped {
		h.mu.Unlock()
		return
	}
	if _, dup := ah.failed[ev.Rank]; dup {
		h.mu.Unlock()
		return
	}
	e := ev.Event
	cause := e.Err
	if e.Panic != "" {
		cause = "panic: " + e.Panic
	}
	if rc := e.RootCause(); rc.Actor != e.Actor {
		cause += fmt.Sprintf(" (root cause: %s)", rc)
	}
	f := MeshFailure{Mesh: ev.Mesh, Ranks: []int{ev.Rank}, Cause: fmt.Sprintf("actor %s failed: %s", e.Actor, cause), Event: &e, Time: time.Now()}
	ah.failed[ev.Rank] = f
	p := ah.publishLocked(f)
	h.mu.Unlock()
	p()
}

func (ah *actorHealth) publishLocked(f MeshFailure) func() {
	subs := slices.Clone(ah.subs)
	return func() {
		for _, s := range subs {
			s.Send(f)
		}
	}
}

// check returns an error naming the failed ranks among ranks.
func (h *health) check(name string, ranks []int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ah, ok := h.actors[name]
	if !ok {
		return nil
	}
	if ah.stopped {
		return fmt.Errorf("mesh: actor mesh %q is stopped", name)
	}
	var failures []MeshFailure
	for _, r := range ranks {
		if f, bad := ah.failed[r]; bad {
			failures = append(failures, f)
		}
	}
	if len(failures) == 0 {
		return nil
	}
	return &MeshError{Mesh: name, Failures: failures}
}

func (h *health) failure(name string, rank int) (MeshFailure, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ah, ok := h.actors[name]; ok {
		f, bad := ah.failed[rank]
		return f, bad
	}
	return MeshFailure{}, false
}

func (h *health) subscribe(name string, inst *core.Instance) *core.PortReceiver[MeshFailure] {
	port, rx := core.OpenPort[MeshFailure](inst)
	h.mu.Lock()
	ah, ok := h.actors[name]
	if ok {
		ah.subs = append(ah.subs, port)
		// A new subscriber first hears of what already failed.
		ranks := make([]int, 0, len(ah.failed))
		for r := range ah.failed {
			ranks = append(ranks, r)
		}
		sort.Ints(ranks)
		for _, r := range ranks {
			port.Send(ah.failed[r])
		}
	}
	h.mu.Unlock()
	return rx
}

func (h *health) markStopped(name string) {
	h.mu.Lock()
	if ah, ok := h.actors[name]; ok {
		ah.stopped = true
	}
	h.mu.Unlock()
}

func (h *health) deadProcs() map[int]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	dead := make(map[int]bool, len(h.procDead))
	for r := range h.procDead {
		dead[r] = true
	}
	return dead
}
