package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actormesh/actormesh/alloc"
	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/transport"
)

// RunProcChild is the body of a proc launched by a host (proc mode): it
// serves a proc with a ProcAgent, tells the host it is ready, and returns
// the exit code once the agent has stopped every actor (StopAll) or the
// host is gone. It never exits the process itself.
func RunProcChild(ctx context.Context, m *alloc.ProcMode) (int, error) {
	if err := alloc.WatchParent(); err != nil {
		return 1, err
	}
	want, err := core.ParseProcID(m.ProcID)
	if err != nil {
		return 2, fmt.Errorf("mesh: proc mode: %w", err)
	}
	hostAgent, err := core.ParseActorID(m.HostAgent)
	if err != nil {
		return 2, fmt.Errorf("mesh: proc mode: host agent: %w", err)
	}
	interval := alloc.EnvDuration(alloc.EnvHeartbeatInterval, alloc.DefaultHeartbeatInterval)
	timeout := alloc.EnvDuration(alloc.EnvHeartbeatTimeout, alloc.DefaultHeartbeatTimeout)

	p, err := core.DirectProc(transport.Unix.Any(), want.Name, nil)
	if err != nil {
		return 1, err
	}
	stopped := make(chan int, 1)
	agent, err := StartProcAgent(p, ProcAgentOptions{OnStopAll: func(code int) {
		select {
		case stopped <- code:
		default:
		}
	}})
	if err != nil {
		shutdownProc(p)
		return 1, err
	}
	client, _, err := p.Instance("bootstrap")
	if err != nil {
		shutdownProc(p)
		return 1, err
	}
	host := core.ActorRef{ID: hostAgent}
	if err := host.Send(client, ProcCallback{Name: want.Name, ProcID: p.ID(), Agent: agent}); err != nil {
		shutdownProc(p)
		return 1, err
	}

	lost := make(chan error, 1)
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	go func() {
		if err := watchHost(hbCtx, client, host, interval, timeout); err != nil {
			lost <- err
		}
	}()

	var code int
	select {
	case code = <-stopped:
	case err = <-lost:
		code = 1
	case <-ctx.Done():
		code, err = 1, ctx.Err()
	}
	stopHeartbeat()
	shutdownProc(p)
	return code, err
}

// watchHost pings the host agent until ctx ends; an unanswered ping means
// the host is gone, which is the backstop when pdeathsig is disabled.
func watchHost(ctx context.Context, client *core.Instance, host core.ActorRef, interval, timeout time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		port, rx := core.OpenOncePort[bool](client)
		if err := host.Send(client, HostPing{Reply: port.Bind()}); err != nil {
			rx.Close()
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := rx.Recv(pctx)
		cancel()
		rx.Close()
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("mesh: host %s did not answer within %v", host, timeout)
			}
			return fmt.Errorf("mesh: host %s unreachable: %w", host, err)
		}
	}
}

func shutdownProc(p *core.Proc) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Shutdown(ctx)
}
