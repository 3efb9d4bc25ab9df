package core

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/actormesh/actormesh/internal/codec"
	"github.com/vmihailenco/msgpack/v5"
)

// The registry is the one piece of process-wide state: it maps stable names
// to message types and actor factories so that another process can name a
// type on the wire and get the same Go type (or foreign factory) here.

// ActorFactory makes an actor from msgpack-encoded parameters. Factories
// registered from outside Go (the C ABI) use this form directly.
type ActorFactory func(params []byte) (Actor, error)

// The registry is read on every remote message and written only while a
// program registers its types, so readers load an immutable snapshot and
// writers replace it under a mutex.
type registrySnapshot struct {
	msgByName  map[string]*msgType
	msgByType  map[reflect.Type]*msgType
	actors     map[string]ActorFactory
	actorTypes map[reflect.Type]string
}

var (
	registryMu sync.Mutex
	registry   atomic.Pointer[registrySnapshot]
)

func init() {
	registry.Store(&registrySnapshot{
		msgByName:  map[string]*msgType{},
		msgByType:  map[reflect.Type]*msgType{},
		actors:     map[string]ActorFactory{},
		actorTypes: map[reflect.Type]string{},
	})
}

// updateRegistry applies f to a copy of the registry and publishes it.
func updateRegistry(f func(r *registrySnapshot)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	old := registry.Load()
	next := &registrySnapshot{
		msgByName:  maps.Clone(old.msgByName),
		msgByType:  maps.Clone(old.msgByType),
		actors:     maps.Clone(old.actors),
		actorTypes: maps.Clone(old.actorTypes),
	}
	f(next)
	registry.Store(next)
}

// RegisterMessage registers T under name, so that values of T sent to an
// actor in another process are decoded back into T. Registering the same
// pair twice is a no-op; reusing a name for another type panics, since that
// is a program bug that would otherwise corrupt messages silently.
func RegisterMessage[T any](name string) {
	registerMessageType(name, reflect.TypeFor[T]())
}

func registerMessageType(name string, t reflect.Type) {
	updateRegistry(func(r *registrySnapshot) {
		if old, ok := r.msgByName[name]; ok {
			if old.t == t {
				return
			}
			panic(fmt.Sprintf("core: message name %q already registered for %v, not %v", name, old.t, t))
		}
		if old, ok := r.msgByType[t]; ok {
			panic(fmt.Sprintf("core: message type %v already registered as %q, not %q", t, old.name, name))
		}
		mt := &msgType{name: name, t: t, codec: codec.Of(t), borrows: holdsBuffer(t)}
		r.msgByName[name] = mt
		r.msgByType[t] = mt
	})
}

// MessageTypeName returns the registered name of msg's type.
func MessageTypeName(msg any) (string, bool) {
	if mt := messageType(msg); mt != nil {
		return mt.name, true
	}
	return "", false
}

// lastSentType is the registration messageType found last: senders
// mostly send one type many times.
var lastSentType atomic.Pointer[msgType]

// messageType returns the registration of msg's type, or nil.
func messageType(msg any) *msgType {
	t := reflect.TypeOf(msg)
	if mt := lastSentType.Load(); mt != nil && mt.t == t {
		return mt
	}
	mt := registry.Load().msgByType[t]
	if mt != nil {
		lastSentType.Store(mt)
	}
	return mt
}

// RegisterActor registers an actor type under name with a constructor that
// takes decoded parameters of type P.
func RegisterActor[A Actor, P any](name string, newActor func(P) (A, error)) {
	RegisterActorFactory(name, func(raw []byte) (Actor, error) {
		var p P
		if len(raw) > 0 {
			if err := msgpack.Unmarshal(raw, &p); err != nil {
				return nil, fmt.Errorf("core: decoding parameters for actor type %q: %w", name, err)
			}
		}
		return newActor(p)
	})
	updateRegistry(func(r *registrySnapshot) { r.actorTypes[reflect.TypeFor[A]()] = name })
}

// RegisterActorFactory registers an actor type by a raw factory. Foreign
// hosts (the C ABI) register their actor types this way.
func RegisterActorFactory(name string, f ActorFactory) {
	if name == "" || f == nil {
		panic("core: RegisterActorFactory needs a name and a factory")
	}
	updateRegistry(func(r *registrySnapshot) { r.actors[name] = f })
}

// ActorTypeName returns the name an actor type was registered under.
func ActorTypeName[A Actor]() (string, bool) {
	name, ok := registry.Load().actorTypes[reflect.TypeFor[A]()]
	return name, ok
}

func lookupActorFactory(name string) (ActorFactory, bool) {
	f, ok := registry.Load().actors[name]
	return f, ok
}

// msgType is a registered message type, as the wire names it.
type msgType struct {
	name  string
	t     reflect.Type
	codec *codec.Codec
	// borrows is set when values of t can hold a Buffer, which may keep
	// the received frame (see decodeLent).
	borrows bool
	// bodySize is the size of the last body encoded, when sizeHint
	// guessed too small for it (see encodeEnvelopeValue).
	bodySize atomic.Int32
}

func lookupMessageType(name string) (*msgType, bool) {
	t, ok := registry.Load().msgByName[name]
	return t, ok
}

// lookupMessageTypeBytes is lookupMessageType for a name still in a
// received frame; the map lookup does not copy it.
func lookupMessageTypeBytes(name []byte) (*msgType, bool) {
	t, ok := registry.Load().msgByName[string(name)]
	return t, ok
}

// decodeRegistered decodes body into a fresh value of the type registered
// under name. With alias, []byte values in it may point into body, and
// aliased says whether any does (body must then never be recycled).
func decodeRegistered(name string, body []byte, alias bool) (v any, aliased bool, err error) {
	t, ok := lookupMessageType(name)
	if !ok {
		return nil, false, fmt.Errorf("%w %q", ErrUnknownMessageType, name)
	}
	return t.decode(body, alias)
}

// decodeLent decodes body, which points into frame (a buffer of the
// transport's pool), lending the frame to the Buffers in the value. It
// takes frame over: the frame is recycled once the decoder and every
// Buffer pointing into it are done with it. A nil frame is one outside
// the pool, which the Buffers may simply keep.
func (t *msgType) decodeLent(body, frame []byte) (any, error) {
	lease := unpooledFrame
	if frame != nil {
		lease = newFrameLease(frame)
	}
	v, err := t.codec.NewLent(body, lease)
	if err != nil {
		// Buffers of the failed attempt took shares nobody will give back:
		// the frame is left to the collector.
		return nil, fmt.Errorf("core: decoding message of type %q: %w", t.name, err)
	}
	if lease != unpooledFrame {
		lease.drop()
	}
	return v, nil
}

func (t *msgType) decode(body []byte, alias bool) (v any, aliased bool, err error) {
	name := t.name
	v, aliased, err = t.codec.New(body, alias)
	if err != nil {
		return nil, false, fmt.Errorf("core: decoding message of type %q: %w", name, err)
	}
	return v, aliased, nil
}

func init() {
	RegisterMessage[Undeliverable]("actormesh.Undeliverable")
	RegisterMessage[SupervisionEvent]("actormesh.SupervisionEvent")
	RegisterMessage[ActorID]("actormesh.ActorID")
	RegisterMessage[PortID]("actormesh.PortID")
	RegisterMessage[string]("string")
	RegisterMessage[[]byte]("bytes")
	RegisterMessage[int]("int")
	RegisterMessage[int64]("int64")
	RegisterMessage[uint64]("uint64")
	RegisterMessage[float64]("float64")
	RegisterMessage[bool]("bool")
}

// msgpackMarshal encodes a message body in a buffer of its own.
func msgpackMarshal(v any) ([]byte, error) {
	return codec.AppendValue(make([]byte, 0, sizeHint(v)+8), v)
}
