package mesh

import (
	"context"
	"fmt"
	"time"

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

// EnvCallTimeout bounds a Call whose ctx has no deadline (a positive
// duration such as "30s", or bare seconds; default DefaultCallTimeout).
const EnvCallTimeout = "HYPERACTOR_MESH_CALL_TIMEOUT"

// DefaultCallTimeout bounds a Call whose ctx has no deadline, so that a
// rank that never answers cannot block its caller for ever.
const DefaultCallTimeout = 30 * time.Second

// CallTimeout is the bound of a Call whose ctx has no deadline:
// EnvCallTimeout's value, or DefaultCallTimeout.
func CallTimeout() time.Duration {
	if d := alloc.EnvDuration(EnvCallTimeout, DefaultCallTimeout); d > 0 {
		return d
	}
	return DefaultCallTimeout
}

// Call casts the message that build makes around a reply port, then
// gathers one reply per rank of the view until ctx ends (if ctx has no
// deadline, for at most EnvCallTimeout). A rank whose actor or proc fails
// meanwhile gets its failure as error; a rank that stays silent gets the
// deadline's error. Call itself fails only if the cast does, which it
// does at once, naming them, if ranks of the view are known to have failed.
func Call[R any, A core.Actor](ctx context.Context, inst *core.Instance, m *ActorMesh[A], build func(reply core.PortRef[R]) any) (*ValueMesh[R], error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CallTimeout())
		defer cancel()
	}
	port, rx := core.OpenPort[R](inst)
	defer rx.Close()
	failures := m.Subscribe(inst)
	defer failures.Close()

	rankOf := m.plan.rankOf
	n := len(m.ranks)
	if err := m.Cast(inst, build(port.Bind())); err != nil {
		return nil, err
	}
	out := &ValueMesh[R]{Extent: m.extent, Values: make([]R, n), Errs: make([]error, n)}
	done := make([]bool, n)
	pending := n
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
			if err != nil { // closed: the caller's instance stopped
				for rank := range done {
					settle(rank, fmt.Errorf("mesh: no reply from rank %d: %w", rank, err))
				}
				break
			}
			if !ok {
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
			for _, rank := range f.Ranks { // the view's ranks (see Subscribe)
				if rank >= 0 && rank < len(done) {
					settle(rank, f)
				}
			}
		}
		if pending == 0 {
			break
		}
		// Only after the drain above: replies short of the NotifyAfter
		// count may be queued without a wake-up.
		if err := ctx.Err(); err != nil {
			for rank := range done {
				settle(rank, fmt.Errorf("mesh: no reply from rank %d: %w", rank, err))
			}
			break
		}
		select {
		case <-rx.NotifyAfter(pending): // one wake-up for the lot, not one per reply
		case <-failures.Notify():
		case <-ctx.Done():
		}
	}
	return out, nil
}
