package core

import (
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The registry is the one piece of process-wide state: it maps stable names
// to message types and actor factories so that another process can name a
// type on the wire and get the same Go type (or foreign factory) here.

// ActorFactory makes an actor from msgpack-encoded parameters. Factories
// registered from outside Go (the C ABI) use this form directly.
type ActorFactory func(params []byte) (Actor, error)

var registry = struct {
	sync.RWMutex
	msgByName  map[string]reflect.Type
	msgByType  map[reflect.Type]string
	actors     map[string]ActorFactory
	actorTypes map[reflect.Type]string
}{
	msgByName:  map[string]reflect.Type{},
	msgByType:  map[reflect.Type]string{},
	actors:     map[string]ActorFactory{},
	actorTypes: map[reflect.Type]string{},
}

// RegisterMessage registers T under name, so that values of T sent to an
// actor in another process are decoded back into T. Registering the same
// pair twice is a no-op; reusing a name for another type panics, since that
// is a program bug that would otherwise corrupt messages silently.
func RegisterMessage[T any](name string) {
	registerMessageType(name, reflect.TypeFor[T]())
}

func registerMessageType(name string, t reflect.Type) {
	registry.Lock()
	defer registry.Unlock()
	if old, ok := registry.msgByName[name]; ok {
		if old == t {
			return
		}
		panic(fmt.Sprintf("core: message name %q already registered for %v, not %v", name, old, t))
	}
	if old, ok := registry.msgByType[t]; ok {
		panic(fmt.Sprintf("core: message type %v already registered as %q, not %q", t, old, name))
	}
	registry.msgByName[name] = t
	registry.msgByType[t] = name
}

// MessageTypeName returns the registered name of msg's type.
func MessageTypeName(msg any) (string, bool) {
	registry.RLock()
	defer registry.RUnlock()
	name, ok := registry.msgByType[reflect.TypeOf(msg)]
	return name, ok
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
	registry.Lock()
	registry.actorTypes[reflect.TypeFor[A]()] = name
	registry.Unlock()
}

// RegisterActorFactory registers an actor type by a raw factory.
func RegisterActorFactory(name string, f ActorFactory) {
	if name == "" || f == nil {
		panic("core: RegisterActorFactory needs a name and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	registry.actors[name] = f
}

// ActorTypeName returns the name an actor type was registered under.
func ActorTypeName[A Actor]() (string, bool) {
	registry.RLock()
	defer registry.RUnlock()
	name, ok := registry.actorTypes[reflect.TypeFor[A]()]
	return name, ok
}

func lookupActorFactory(name string) (ActorFactory, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.actors[name]
	return f, ok
}

func lookupMessageType(name string) (reflect.Type, bool) {
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.msgByName[name]
	return t, ok
}

// decodeRegistered decodes body into a fresh value of the type registered
// under name.
func decodeRegistered(name string, body []byte) (any, error) {
	t, ok := lookupMessageType(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownMessageType, name)
	}
	ptr := reflect.New(t)
	if err := msgpack.Unmarshal(body, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("core: decoding message of type %q: %w", name, err)
	}
	return ptr.Elem().Interface(), nil
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

func msgpackMarshal(v any) ([]byte, error) {
	e := bodyEncoders.Get().(*bodyEncoder)
	e.w.b = make([]byte, 0, sizeHint(v)+8)
	err := e.enc.Encode(v)
	b := e.w.b
	e.w.b = nil
	bodyEncoders.Put(e)
	return b, err
}
