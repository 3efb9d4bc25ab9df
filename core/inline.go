package core

import (
	"errors"
	"fmt"
)

// InlineMessage is a message as an inline handler (BindInlineHandler)
// sees it: from another proc it is encoded (Type and Body), from this
// proc it is the sender's Go value (Value, with Type its registered name
// when known).
type InlineMessage struct {
	Sender  ActorID
	Type    string
	Body    []byte // the msgpack body; nil when Value is set
	Value   any    // the Go value of a message sent within this proc
	Headers map[string]string

	env *envelope // the delivery, for Relay; valid only during the handler
}

// Relay is inst.PostEncoded, for an inline handler passing m on: when dest
// is an idle actor of this proc and body is not large (maxClaimed), its
// loop becomes the continuation of m's delivery (see
// transport.Continuation), run by the connection's reader once the
// handler returns while messages arrive in quick succession, rather than
// on a worker woken for it. It is what lets a stream of casts
// reach their target actor with no goroutine hand-off at all. Call it only
// from the handler m was given to, before that returns. When body is part
// of m.Body, the buffer m arrived in passes to the relayed message: neither
// may be used once Relay returns.
func (m *InlineMessage) Relay(inst *Instance, dest PortID, typeName string, body []byte, headers map[string]string) error {
	env := m.env
	if env == nil || !env.relayOK || env.relayed != nil || dest.Actor.Proc != inst.proc.id {
		return inst.PostEncoded(dest, typeName, body, headers)
	}
	if err := inst.checkLive(); err != nil {
		return err
	}
	// Delivery copies what it keeps out of fwd, as out of receive's.
	fwd := envelopes.Get().(*envelope)
	*fwd = envelope{sender: inst.c.id, dest: dest, typeName: typeName, body: body, headers: headers}
	if env.frame != nil && sameEnd(body, env.frame) {
		// The frame goes with the body, so that the actor recycles it
		// once it has decoded the body, rather than leave it to the
		// collector: a fresh frame per cast is memory no cache holds.
		fwd.frame, env.frame = env.frame, nil
		env.relayedFrame = true
	}
	env.relayed = inst.proc.deliver(fwd, len(body) < maxClaimed)
	*fwd = envelope{}
	envelopes.Put(fwd)
	return nil
}

// sameEnd reports whether b is a slice of frame's memory reaching to its
// end, as every slice of a received message's body is.
func sameEnd(b, frame []byte) bool {
	return cap(b) > 0 && cap(frame) > 0 && &b[:cap(b)][cap(b)-1] == &frame[:cap(frame)][cap(frame)-1]
}

// InlineHandler handles a message on the goroutine that delivers it: a
// connection's reader for a message from another proc, the sender's own
// goroutine within the proc. It is called serially per sender session, so
// each sender's order holds, but concurrently across senders. It must not
// block (sends and posts do not) and must not panic. A returned error
// makes the message undeliverable to its sender with the error as reason.
// Body and Headers belong to the handler.
type InlineHandler func(m InlineMessage) error

// BindInlineHandler makes port of the client instance inst call h for
// every message, with no mailbox and no goroutine hand-off in between:
// the fast path of forwarders such as a mesh's comm actor. Port may be
// ActorPort, so that the instance is addressable as if it were an actor,
// or UndeliverablePort, replacing Instance.Undeliverables (which then
// receives nothing), or any port the instance has not opened. The binding
// ends when the instance stops.
func BindInlineHandler(inst *Instance, port uint64, h InlineHandler) error {
	if h == nil {
		return errors.New("core: BindInlineHandler needs a handler")
	}
	c := inst.c
	if c.actor != nil {
		return fmt.Errorf("core: BindInlineHandler: %s is an actor, not a client instance", c.id)
	}
	if port >= FirstEphemeralPort && port < inst.ports.Load() {
		return fmt.Errorf("core: BindInlineHandler: port %d of %s is already open", port, c.id)
	}
	if !c.bindPort(port, inlineSink(h)) {
		return fmt.Errorf("%w: %s", ErrInstanceStopped, c.id)
	}
	return nil
}

type inlineSink InlineHandler

func (h inlineSink) deliver(env *envelope) error {
	m := InlineMessage{Sender: env.sender, Type: env.typeName, Headers: env.headers, env: env}
	if env.local {
		m.Value = env.value
		if m.Type == "" && env.value != nil {
			m.Type, _ = MessageTypeName(env.value)
		}
	} else {
		m.Body = env.body
	}
	return h(m)
}

func (inlineSink) close(string) {}
