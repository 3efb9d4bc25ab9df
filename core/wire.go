package core

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/actormesh/actormesh/internal/codec"
	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/actormesh/actormesh/transport"
)

// The envelope travels as one msgpack array. It is written and read by hand
// (rather than through reflection) because every remote message pays for it;
// the message body inside is ordinary reflection-based msgpack.

const envelopeVersion = 1

// Envelope kinds.
const (
	kindMessage uint8 = iota // an ordinary message to a port
)

// reader adds the envelope's compound values to the msgpack reader.
type reader struct{ msgp.Reader }

// addrCache avoids re-parsing the few addresses a proc talks to on every
// message. It is reset when it grows large, so it stays bounded.
var addrCache sync.Map
var addrCacheSize int64
var addrCacheMu sync.Mutex

func parseAddrCached(s string) (transport.Addr, error) {
	if s == "" {
		return transport.Addr{}, nil
	}
	if v, ok := addrCache.Load(s); ok {
		return v.(transport.Addr), nil
	}
	a, err := transport.ParseAddr(s)
	if err != nil {
		return a, err
	}
	addrCacheMu.Lock()
	if addrCacheSize > 4096 {
		addrCache.Clear()
		addrCacheSize = 0
	}
	addrCacheSize++
	addrCacheMu.Unlock()
	addrCache.Store(s, a)
	return a, nil
}

// idIntern maps the encoded bytes of an actor id to the decoded id, so
// that the few ids a proc hears from are decoded (and their strings
// allocated) once rather than on every message. It is bounded.
var idIntern = struct {
	sync.RWMutex
	m map[string]ActorID
}{m: map[string]ActorID{}}

const maxInterned = 4096

func appendAddr(b []byte, a transport.Addr) []byte {
	if a.Transport == 0 {
		return msgp.AppendStr(b, "")
	}
	t := a.Transport.String()
	if a.Transport == transport.Local && a.Address == "" {
		return msgp.AppendStr(b, "local:0")
	}
	b = msgp.AppendStrHeader(b, len(t)+1+len(a.Address))
	b = append(b, t...)
	b = append(b, ':')
	return append(b, a.Address...)
}

func appendActorID(b []byte, a ActorID) []byte {
	b = appendAddr(b, a.Proc.Addr)
	b = msgp.AppendStr(b, a.Proc.Name)
	b = msgp.AppendStr(b, a.Name)
	return msgp.AppendUint(b, a.PID)
}

func (r *reader) actorID() (ActorID, error) {
	start := r.Off
	addr, err := r.StrBytes()
	if err != nil {
		return ActorID{}, err
	}
	procName, err := r.StrBytes()
	if err != nil {
		return ActorID{}, err
	}
	name, err := r.StrBytes()
	if err != nil {
		return ActorID{}, err
	}
	pid, err := r.Uint()
	if err != nil {
		return ActorID{}, err
	}
	raw := r.B[start:r.Off]
	idIntern.RLock()
	a, ok := idIntern.m[string(raw)]
	idIntern.RUnlock()
	if ok {
		return a, nil
	}
	parsed, err := parseAddrCached(string(addr))
	if err != nil {
		return ActorID{}, err
	}
	a = ActorID{Proc: ProcID{Addr: parsed, Name: string(procName)}, Name: string(name), PID: pid}
	idIntern.Lock()
	if len(idIntern.m) >= maxInterned {
		clear(idIntern.m)
	}
	idIntern.m[string(raw)] = a
	idIntern.Unlock()
	return a, nil
}

func appendEnvelopeHeader(b []byte, env *envelope) []byte {
	b = msgp.AppendArrayLen(b, 8)
	b = msgp.AppendUint(b, envelopeVersion)
	b = msgp.AppendUint(b, uint64(env.kind))
	b = appendActorID(b, env.sender)
	b = appendActorID(b, env.dest.Actor)
	b = msgp.AppendUint(b, env.dest.Index)
	b = msgp.AppendStr(b, env.typeName)
	b = msgp.AppendMapLen(b, len(env.headers))
	for k, v := range env.headers {
		b = msgp.AppendStr(b, k)
		b = msgp.AppendStr(b, v)
	}
	return b
}

func headerSizeHint(env *envelope) int {
	size := 64 + len(env.typeName) + 2*len(env.sender.Proc.Addr.Address) + 2*len(env.dest.Actor.Proc.Addr.Address) +
		len(env.sender.Name) + len(env.dest.Actor.Name) + len(env.sender.Proc.Name) + len(env.dest.Actor.Proc.Name)
	for k, v := range env.headers {
		size += len(k) + len(v) + 10
	}
	return size
}

// newWireBuffer returns an empty buffer of capacity n for an outgoing
// message; a large one comes from the transport's pool, to which the
// channel returns it once the message is delivered.
func newWireBuffer(n int) []byte {
	return transport.AllocBuffer(n)[:0]
}

// encodeEnvelope writes env with its already-encoded body.
func encodeEnvelope(env *envelope, body []byte) []byte {
	b := appendEnvelopeHeader(newWireBuffer(headerSizeHint(env)+len(body)+5), env)
	b = msgp.AppendBinHeader(b, len(body))
	return append(b, body...)
}

// encodeEnvelopeValue encodes env with its Go value as the body, in one
// buffer of its own (often from the transport's pool, to which the
// channel returns it once delivered): the body's length is patched into a
// fixed-width bin32 header (valid msgpack at any size) once the encoder
// has written it.
func encodeEnvelopeValue(env *envelope, sizeHint int) ([]byte, error) {
	b := appendEnvelopeHeader(newWireBuffer(headerSizeHint(env)+sizeHint+5), env)
	b = append(b, 0xc6, 0, 0, 0, 0)
	at := len(b)
	b, err := codec.AppendValue(b, env.value)
	if err != nil {
		transport.ReleaseBuffer(b)
		return nil, err
	}
	n := len(b) - at
	if uint64(n) > math.MaxUint32 {
		transport.ReleaseBuffer(b)
		return nil, fmt.Errorf("core: message body of %d bytes is too large", n)
	}
	binary.BigEndian.PutUint32(b[at-4:], uint32(n))
	return b, nil
}

// decodeEnvelope parses a wire envelope. The returned body aliases msg;
// the caller sets frame when msg may be recycled.
func decodeEnvelope(msg []byte) (*envelope, error) {
	r := reader{msgp.Reader{B: msg}}
	n, err := r.ArrayLen()
	if err != nil {
		return nil, err
	}
	if n != 8 {
		return nil, fmt.Errorf("core: envelope: want 8 fields, got %d", n)
	}
	v, err := r.Uint()
	if err != nil {
		return nil, err
	}
	if v != envelopeVersion {
		return nil, fmt.Errorf("core: envelope: version %d, want %d", v, envelopeVersion)
	}
	env := &envelope{}
	k, err := r.Uint()
	if err != nil {
		return nil, err
	}
	if k != uint64(kindMessage) {
		return nil, fmt.Errorf("core: envelope: unknown kind %d", k)
	}
	env.kind = uint8(k)
	if env.sender, err = r.actorID(); err != nil {
		return nil, err
	}
	if env.dest.Actor, err = r.actorID(); err != nil {
		return nil, err
	}
	if env.dest.Index, err = r.Uint(); err != nil {
		return nil, err
	}
	if env.typeName, err = r.Str(); err != nil {
		return nil, err
	}
	nh, err := r.MapLen()
	if err != nil {
		return nil, err
	}
	if nh > len(msg) {
		return nil, msgp.ErrShort
	}
	if nh > 0 {
		env.headers = make(map[string]string, nh)
		for range nh {
			k, err := r.Str()
			if err != nil {
				return nil, err
			}
			v, err := r.Str()
			if err != nil {
				return nil, err
			}
			env.headers[k] = v
		}
	}
	if env.body, err = r.Bin(); err != nil {
		return nil, err
	}
	if r.Off != len(msg) {
		return nil, fmt.Errorf("core: envelope: %d trailing bytes", len(msg)-r.Off)
	}
	return env, nil
}
