package mesh

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// ProcMesh is a set of procs laid out on an extent, each its own OS
// process on one of the hosts of a host mesh.
type ProcMesh struct {
	name   string
	host   *HostMesh
	extent alloc.Extent
	procs  []procRef
	health *health

	// The owner hears of proc deaths from the hosts and of actor stops
	// from the proc agents on these two ports.
	procEvents  *core.PortHandle[ProcEvent]
	procRx      *core.PortReceiver[ProcEvent]
	actorEvents *core.PortHandle[ActorEvent]
	actorRx     *core.PortReceiver[ActorEvent]
	stopMonitor chan struct{}
	monitorDone chan struct{}
	closeOnce   sync.Once

	castTable func() *castTableInstall // the cast tree's proc table
}

type procRef struct {
	host  int
	name  string
	id    core.ProcID
	agent core.ActorID
	pid   int
}

func newProcMesh(name string, hm *HostMesh, extent alloc.Extent, inst *core.Instance) *ProcMesh {
	pm := &ProcMesh{name: name, host: hm, extent: extent, procs: make([]procRef, extent.NumRanks()), health: newHealth(),
		stopMonitor: make(chan struct{}), monitorDone: make(chan struct{})}
	// The procs are all known by the time anything casts.
	pm.castTable = sync.OnceValue(func() *castTableInstall {
		var b []byte
		for _, p := range pm.procs {
			b = append(b, p.id.String()...)
			b = append(b, '\n')
		}
		return &castTableInstall{raw: b, key: castTableKey(b)}
	})
	pm.procEvents, pm.procRx = core.OpenPort[ProcEvent](inst)
	pm.actorEvents, pm.actorRx = core.OpenPort[ActorEvent](inst)
	go pm.monitor()
	return pm
}

// monitor applies supervision events as they arrive; nothing polls.
func (pm *ProcMesh) monitor() {
	defer close(pm.monitorDone)
	for {
		for {
			ev, ok, err := pm.procRx.TryRecv()
			if err != nil {
				return
			}
			if !ok {
				break
			}
			rank := ev.Info.Rank
			if rank >= 0 && rank < len(pm.procs) {
				pm.health.procDied(rank, ev.Info)
			}
		}
		for {
			ev, ok, err := pm.actorRx.TryRecv()
			if err != nil {
				return
			}
			if !ok {
				break
			}
			pm.health.actorFailed(ev)
		}
		select {
		case <-pm.procRx.Notify():
		case <-pm.actorRx.Notify():
		case <-pm.stopMonitor:
			return
		}
	}
}

func (pm *ProcMesh) closeMonitor() {
	pm.closeOnce.Do(func() {
		close(pm.stopMonitor)
		<-pm.monitorDone
		pm.procRx.Close()
		pm.actorRx.Close()
	})
}

// hostDied fails every proc of this mesh on host rank h.
func (pm *ProcMesh) hostDied(h int, reason string) {
	for rank, p := range pm.procs {
		if p.host == h {
			pm.health.procDied(rank, ProcInfo{Name: p.name, Rank: rank, Status: ProcFailed, Reason: "its host died: " + reason})
		}
	}
}

// Name is the mesh's name.
func (pm *ProcMesh) Name() string { return pm.name }

// Extent is the procs' extent: the hosts' dimensions, then the per-host ones.
func (pm *ProcMesh) Extent() alloc.Extent { return pm.extent }

// Procs lists the proc ids in rank order.
func (pm *ProcMesh) Procs() []core.ProcID {
	ids := make([]core.ProcID, len(pm.procs))
	for i, p := range pm.procs {
		ids[i] = p.id
	}
	return ids
}

// Agents lists the procs' agents in rank order.
func (pm *ProcMesh) Agents() []core.ActorID {
	ids := make([]core.ActorID, len(pm.procs))
	for i, p := range pm.procs {
		ids[i] = p.agent
	}
	return ids
}

// PIDs lists the procs' OS process ids in rank order.
func (pm *ProcMesh) PIDs() []int {
	pids := make([]int, len(pm.procs))
	for i, p := range pm.procs {
		pids[i] = p.pid
	}
	return pids
}

// Stop stops every proc of the mesh (their hosts stop them in stages) and
// waits until they are gone.
func (pm *ProcMesh) Stop(ctx context.Context, inst *core.Instance) error {
	pm.closeMonitor()
	pm.host.forget(pm)
	replies := make([]*core.OnceReceiver[ProcInfo], len(pm.procs))
	var errs []error
	for rank, p := range pm.procs {
		if p.name == "" {
			continue
		}
		port, rx := core.OpenOncePort[ProcInfo](inst)
		replies[rank] = rx
		host := core.ActorRef{ID: pm.host.hosts[p.host]}
		if err := host.Send(inst, StopProc{Name: p.name, Reason: "proc mesh stopped", Reply: port.Bind()}); err != nil {
			rx.Close()
			replies[rank] = nil
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
		}
	}
	for rank, rx := range replies {
		if rx == nil {
			continue
		}
		info, err := recvFromHost(ctx, pm.host, pm.procs[rank].host, rx)
		if errors.Is(err, errHostGone) {
			// No answer comes from a host that exited; its procs die
			// with it (pdeathsig).
			rx.Close()
			continue
		}
		if err != nil {
			rx.Close()
			errs = append(errs, fmt.Errorf("rank %d: %w", rank, err))
			continue
		}
		if !info.Status.Terminal() {
			errs = append(errs, fmt.Errorf("rank %d: %s", rank, info.Cause()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("mesh: stopping proc mesh %q: %w", pm.name, errors.Join(errs...))
	}
	return nil
}
