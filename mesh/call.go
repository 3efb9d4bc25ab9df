package mesh

import (
	"context"
	"fmt"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
)

// ValueMesh holds one result per rank of a view: a value, or the error
// that kept that rank from answering.
type ValueMesh[R any] struct {
	Extent alloc.Extent
	Values []R
	Errs   []error
}

// Err returns the first rank's error, or nil if every rank answered.
func (v *ValueMesh[R]) Err() error {
	for rank, err := range v.Errs {
		if err != nil {
			return fmt.Errorf("rank %d: %w", rank, err)
		}
	}
	return nil
}

// Call casts the message that build makes around a reply port, then
// gathers one reply per rank of the view until ctx ends. A rank whose
// actor or proc fails meanwhile gets its failure as error; a rank that
// stays silent gets ctx's error. Call itself fails only if the cast does.
func Call[R any, A core.Actor](ctx context.Context, inst *core.Instance, m *ActorMesh[A], build func(reply core.PortRef[R]) any) (*ValueMesh[R], error) {
	port, rx := core.OpenPort[R](inst)
	defer rx.Close()
	failures := m.Subscribe(inst)
	defer failures.Close()

	refs := m.Values()
	rankOf := make(map[core.ActorID]int, len(refs))
	for rank, ref := range refs {
		rankOf[ref.ID] = rank
	}
	if err := m.Cast(inst, build(port.Bind())); err != nil {
		return nil, err
	}
	out := &ValueMesh[R]{Extent: m.extent, Values: make([]R, len(refs)), Errs: make([]error, len(refs))}
	done := make([]bool, len(refs))
	pending := len(refs)
	settle := func(rank int, err error) {
		if !done[rank] {
			done[rank] = true
			out.Errs[rank] = err
			pending--
		}
	}
	for pending > 0 {
		for {
			v, from, ok, err := rx.TryRecvFrom()
			if err != nil || !ok {
				break
			}
			if rank, ok := rankOf[from]; ok {
				if !done[rank] {
					out.Values[rank] = v
				}
				settle(rank, nil)
			}
		}
		for {
			f, ok, err := failures.TryRecv()
			if err != nil || !ok {
				break
			}
			for _, r := range f.Ranks {
				for rank, pr := range m.ranks {
					if pr == r {
						settle(rank, f)
					}
				}
			}
		}
		if pending == 0 {
			break
		}
		select {
		case <-rx.NotifyAfter(pending): // one wake-up for the lot, not one per reply
		case <-failures.Notify():
		case <-ctx.Done():
			for rank := range done {
				settle(rank, fmt.Errorf("mesh: no reply from rank %d: %w", rank, ctx.Err()))
			}
		}
	}
	return out, nil
}
