package core

import (
	"context"
	"fmt"
	"time"
)

// Actor is the behaviour of an actor: it handles one message at a time.
// Messages are ordinary Go values; a type switch in Handle dispatches them.
// Returning an error fails the actor, as does a panic.
type Actor interface {
	Handle(cx *Context, msg any) error
}

// Initializer is implemented by actors that need to set up before their
// first message. An error fails the actor before it handles anything.
type Initializer interface {
	Init(cx *Context) error
}

// Cleaner is implemented by actors that release resources when they stop.
// err is the failure that stopped the actor, or nil on a clean stop.
type Cleaner interface {
	Cleanup(cx *Context, err error) error
}

// SupervisionHandler is implemented by actors that want to decide about
// their children's stops. Returning handled=false (the default for
// failures) fails this actor too, passing the child's event up.
type SupervisionHandler interface {
	HandleSupervision(cx *Context, ev SupervisionEvent) (handled bool, err error)
}

// UndeliverableHandler is implemented by actors that want to react to
// messages they sent that could not be delivered. Without it the message
// is logged and dropped.
type UndeliverableHandler interface {
	HandleUndeliverable(cx *Context, u Undeliverable) error
}

// Status is an actor's lifecycle state.
type Status int32

const (
	StatusCreated Status = iota
	StatusInitializing
	StatusIdle
	StatusProcessing
	StatusStopping
	StatusStopped
	StatusFailed
	StatusClient // a client instance: a mailbox with no message loop
)

func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "created"
	case StatusInitializing:
		return "initializing"
	case StatusIdle:
		return "idle"
	case StatusProcessing:
		return "processing"
	case StatusStopping:
		return "stopping"
	case StatusStopped:
		return "stopped"
	case StatusFailed:
		return "failed"
	case StatusClient:
		return "client"
	}
	return fmt.Sprintf("status(%d)", int32(s))
}

// Terminal reports whether s is a final state.
func (s Status) Terminal() bool { return s == StatusStopped || s == StatusFailed }

// SupervisionEvent reports that an actor stopped, cleanly or not. Events
// travel to the actor's parent and, from root actors, to the proc's
// supervisor.
type SupervisionEvent struct {
	Actor  ActorID
	Status Status
	// Reason says why a clean stop happened ("stop requested", "parent stopping").
	Reason string
	// Err is the failure's text; empty for clean stops.
	Err string
	// Panic is the panic value's text when the actor panicked, and Stack its stack.
	Panic string
	Stack string
	Time  time.Time
	// Cause is the child event that this actor failed to handle, so the
	// root cause survives the trip up the tree.
	Cause *SupervisionEvent
}

// Failed reports whether the event is a failure rather than a clean stop.
func (e SupervisionEvent) Failed() bool { return e.Status == StatusFailed }

// RootCause follows Cause to the event where the failure began.
func (e SupervisionEvent) RootCause() SupervisionEvent {
	for e.Cause != nil {
		e = *e.Cause
	}
	return e
}

func (e SupervisionEvent) String() string {
	switch {
	case e.Panic != "":
		return fmt.Sprintf("actor %s failed: panic: %s", e.Actor, e.Panic)
	case e.Failed():
		return fmt.Sprintf("actor %s failed: %s", e.Actor, e.Err)
	}
	return fmt.Sprintf("actor %s stopped: %s", e.Actor, e.Reason)
}

// Undeliverable is a message that came back to its sender.
type Undeliverable struct {
	Sender ActorID
	Dest   PortID
	// Type is the registered message type name, when known.
	Type string
	// Reason says why the message could not be delivered.
	Reason string
	// Message is the original value when the message never left this
	// process; Body is its msgpack encoding otherwise.
	Message any `msgpack:"-"`
	Body    []byte
	// Headers are the original message's headers.
	Headers map[string]string
}

func (u Undeliverable) Error() string {
	return fmt.Sprintf("core: message from %s to %s undeliverable: %s", u.Sender, u.Dest, u.Reason)
}

// Context is what a handler sees: the actor's own instance (to send, open
// ports and spawn children) and the message being handled.
type Context struct {
	*Instance
	env  *envelope
	cell *cell
}

// Sender is the actor that sent the message being handled.
func (cx *Context) Sender() ActorID {
	if cx.env == nil {
		return ActorID{}
	}
	return cx.env.sender
}

// Header returns a header of the message being handled.
func (cx *Context) Header(key string) (string, bool) {
	if cx.env == nil || cx.env.headers == nil {
		return "", false
	}
	v, ok := cx.env.headers[key]
	return v, ok
}

// Spawn starts a child actor. Children share the root's name and take the
// next pid from its counter.
func (cx *Context) Spawn(a Actor) (*ActorHandle, error) {
	return cx.proc.spawnChild(cx.cell, a)
}

// Stop asks this actor to stop after the current message, discarding its queue.
func (cx *Context) Stop(reason string) { cx.cell.stop(reason, false) }

// ActorRef is a reference to an actor that can be sent anywhere.
type ActorRef struct {
	ID ActorID
}

func (r ActorRef) String() string { return r.ID.String() }

// Send sends msg to the actor's message port. Within one proc the value is
// handed over as is, so the sender must not modify it afterwards; across
// procs its type must be registered with RegisterMessage.
func (r ActorRef) Send(s Sender, msg any) error {
	return s.instance().post(r.ID.Port(ActorPort), msg, nil)
}

// SendWithHeaders is Send with message headers the handler can read with
// Context.Header.
func (r ActorRef) SendWithHeaders(s Sender, msg any, headers map[string]string) error {
	return s.instance().post(r.ID.Port(ActorPort), msg, headers)
}

// Sender is anything that can send: an *Instance or a *Context.
type Sender interface {
	instance() *Instance
}

func (i *Instance) instance() *Instance { return i }

// ActorHandle controls an actor from the proc that runs it.
type ActorHandle struct {
	c *cell
}

// ID is the actor's id.
func (h *ActorHandle) ID() ActorID { return h.c.id }

// Ref is a reference to the actor.
func (h *ActorHandle) Ref() ActorRef { return ActorRef{ID: h.c.id} }

// Status is the actor's current status.
func (h *ActorHandle) Status() Status { return h.c.loadStatus() }

// Stop stops the actor after its current message, discarding queued ones
// (they come back to their senders as undeliverable).
func (h *ActorHandle) Stop(reason string) { h.c.stop(reason, false) }

// DrainAndStop stops the actor once it has handled every message queued so far.
func (h *ActorHandle) DrainAndStop(reason string) { h.c.stop(reason, true) }

// Done is closed once the actor reached a terminal status.
func (h *ActorHandle) Done() <-chan struct{} { return h.c.done }

// Wait waits for the actor to stop and returns its final event.
func (h *ActorHandle) Wait(ctx context.Context) (SupervisionEvent, error) {
	select {
	case <-h.c.done:
		return *h.c.final, nil
	case <-ctx.Done():
		return SupervisionEvent{}, fmt.Errorf("core: waiting for %s: %w", h.c.id, ctx.Err())
	}
}
