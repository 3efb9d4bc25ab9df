package mesh

import (
	"errors"
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
	name    string
	failed  map[int]MeshFailure // by rank
	stopped bool
	subs    []subscriber
	owner   *core.Instance
}

// subscriber receives the failures of one view of an actor mesh.
type subscriber struct {
	port *core.PortHandle[MeshFailure]
	rx   *core.PortReceiver[MeshFailure]
	view map[int]int // mesh rank → view rank; nil for the whole mesh
}

// pruneLocked drops the subscribers that closed their receiver, as every
// Call does when it returns: they would only get failures back as
// undeliverable, and the list would grow by one per Call.
func (ah *actorHealth) pruneLocked() {
	ah.subs = slices.DeleteFunc(ah.subs, func(s subscriber) bool { return s.rx.Closed() })
}

// inView is f as a view sees it: only the view's ranks, in its numbering;
// false if none of f's ranks is in the view.
func inView(f MeshFailure, view map[int]int) (MeshFailure, bool) {
	if view == nil {
		return f, true
	}
	var ranks []int
	for _, r := range f.Ranks {
		if v, ok := view[r]; ok {
			ranks = append(ranks, v)
		}
	}
	if len(ranks) == 0 {
		return f, false
	}
	f.Ranks = ranks
	return f, true
}

func newHealth() *health {
	return &health{procDead: map[int]MeshFailure{}, actors: map[string]*actorHealth{}}
}

// ErrNameInUse is the error of a spawn of an actor mesh by the name of
// one that runs on the same proc mesh.
var ErrNameInUse = errors.New("name in use")

// addActorMesh starts the record of a new actor mesh. A name in use by a
// mesh not stopped is refused: the agents would hand back its actors, and
// two handles on them would split its supervision between them.
func (h *health) addActorMesh(name string, owner *core.Instance) (*actorHealth, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.actors[name]; ok && !old.stopped {
		return nil, fmt.Errorf("an actor mesh %q is running on these procs (stop it first): %w", name, ErrNameInUse)
	}
	ah := &actorHealth{name: name, failed: map[int]MeshFailure{}, owner: owner}
	// Procs that died before this mesh was spawned fail its ranks at once.
	for rank, f := range h.procDead {
		f.Mesh = name
		ah.failed[rank] = f
	}
	h.actors[name] = ah
	return ah, nil
}

// removeActorMesh forgets an actor mesh whose spawn failed.
func (h *health) removeActorMesh(name string, ah *actorHealth) {
	h.mu.Lock()
	if h.actors[name] == ah {
		delete(h.actors, name)
	}
	h.mu.Unlock()
}

// procFailures lists the failures of the procs known dead, by rank, as
// failures of the proc mesh name.
func (h *health) procFailures(name string) []MeshFailure {
	h.mu.Lock()
	defer h.mu.Unlock()
	ranks := make([]int, 0, len(h.procDead))
	for r := range h.procDead {
		ranks = append(ranks, r)
	}
	sort.Ints(ranks)
	out := make([]MeshFailure, 0, len(ranks))
	for _, r := range ranks {
		f := h.procDead[r]
		f.Mesh = name
		out = append(out, f)
	}
	return out
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

// actorFailed records an actor's failure on one rank, or its stop when it
// stopped itself.
func (h *health) actorFailed(ev ActorEvent) {
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
	what := "failed: " + e.Err
	switch {
	case e.Panic != "":
		what = "failed: panic: " + e.Panic
	case !e.Failed():
		what = "stopped on its own: " + e.Reason
	}
	if rc := e.RootCause(); rc.Actor != e.Actor {
		what += fmt.Sprintf(" (root cause: %s)", rc)
	}
	f := MeshFailure{Mesh: ev.Mesh, Ranks: []int{ev.Rank}, Cause: fmt.Sprintf("actor %s %s", e.Actor, what), Event: &e, Time: time.Now()}
	ah.failed[ev.Rank] = f
	p := ah.publishLocked(f)
	h.mu.Unlock()
	p()
}

func (ah *actorHealth) publishLocked(f MeshFailure) func() {
	ah.pruneLocked()
	subs := slices.Clone(ah.subs)
	return func() {
		for _, s := range subs {
			if vf, ok := inView(f, s.view); ok {
				s.port.Send(vf)
			}
		}
	}
}

// check returns an error naming the failed ranks among ranks (a view's
// mesh ranks, by view rank), numbered as the view numbers them.
func (h *health) check(ah *actorHealth, ranks []int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ah.stopped {
		return fmt.Errorf("mesh: actor mesh %q is stopped", ah.name)
	}
	var failures []MeshFailure
	for v, r := range ranks {
		if f, bad := ah.failed[r]; bad {
			f.Ranks = []int{v}
			failures = append(failures, f)
		}
	}
	if len(failures) == 0 {
		return nil
	}
	return &MeshError{Mesh: ah.name, Failures: failures}
}

func (h *health) failure(ah *actorHealth, rank int) (MeshFailure, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, bad := ah.failed[rank]
	return f, bad
}

// subscribe opens a receiver of the failures of the view (see inView).
func (h *health) subscribe(ah *actorHealth, inst *core.Instance, view map[int]int) *core.PortReceiver[MeshFailure] {
	port, rx := core.OpenPort[MeshFailure](inst)
	h.mu.Lock()
	ah.pruneLocked()
	ah.subs = append(ah.subs, subscriber{port: port, rx: rx, view: view})
	// A new subscriber first hears of what already failed.
	ranks := make([]int, 0, len(ah.failed))
	for r := range ah.failed {
		ranks = append(ranks, r)
	}
	sort.Ints(ranks)
	for _, r := range ranks {
		if f, ok := inView(ah.failed[r], view); ok {
			port.Send(f)
		}
	}
	h.mu.Unlock()
	return rx
}

func (h *health) markStopped(ah *actorHealth) {
	h.mu.Lock()
	ah.stopped = true
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

// markDead sets castDead in ranks (one entry per proc) for the dead procs.
func (h *health) markDead(ranks []int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for r := range h.procDead {
		if r >= 0 && r < len(ranks) {
			ranks[r] = castDead
		}
	}
}
