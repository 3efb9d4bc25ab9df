package core

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

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
	kindBatch                // messages to one port, their bodies in an array (batch.go)
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
	if err != nil || len(s) > maxCachedIDBytes {
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
	m map[string]*internedID
}{m: map[string]*internedID{}}

const maxInterned = 4096

// maxCachedIDBytes is the longest encoded id (or address) the caches keep;
// any valid one is shorter (names have at most 255 bytes), and a peer
// that sends longer ones cannot pin their memory.
const maxCachedIDBytes = 1024

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

// lastIDs remember the last sender and destination ids decoded, which
// in a stream are the same from one message to the next: comparing the
// encoded bytes is cheaper than hashing them into idIntern.
var lastIDs [2]atomic.Pointer[internedID]

type internedID struct {
	raw string
	id  ActorID
}

const (
	roleSender = iota
	roleDest
)

func (r *reader) actorID(role int) (ActorID, error) {
	// msgpack is prefix-free: the same bytes here are the same id.
	last := lastIDs[role].Load()
	if last != nil && len(r.B)-r.Off >= len(last.raw) && string(r.B[r.Off:r.Off+len(last.raw)]) == last.raw {
		r.Off += len(last.raw)
		return last.id, nil
	}
	in, err := readActorFields(&r.Reader)
	if err != nil {
		return ActorID{}, err
	}
	lastIDs[role].Store(in)
	return in.id, nil
}

// readActorFields reads an actor id's four fields (address, proc name,
// name, pid), interned.
func readActorFields(r *msgp.Reader) (*internedID, error) {
	start := r.Off
	addr, err := r.StrBytes()
	if err != nil {
		return nil, err
	}
	procName, err := r.StrBytes()
	if err != nil {
		return nil, err
	}
	name, err := r.StrBytes()
	if err != nil {
		return nil, err
	}
	pid, err := r.Uint()
	if err != nil {
		return nil, err
	}
	return internID(r.B[start:r.Off], addr, procName, name, pid)
}

func internID(raw, addr, procName, name []byte, pid uint64) (*internedID, error) {
	idIntern.RLock()
	in, ok := idIntern.m[string(raw)]
	idIntern.RUnlock()
	if ok {
		return in, nil
	}
	parsed, err := parseAddrCached(string(addr))
	if err != nil {
		return nil, err
	}
	in = &internedID{raw: string(raw), id: ActorID{Proc: ProcID{Addr: parsed, Name: string(procName)}, Name: string(name), PID: pid}}
	if len(raw) > maxCachedIDBytes {
		return in, nil // not kept: the caches are bounded in bytes too
	}
	idIntern.Lock()
	if len(idIntern.m) >= maxInterned {
		clear(idIntern.m)
	}
	idIntern.m[in.raw] = in
	idIntern.Unlock()
	return in, nil
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
//
// A registered type's last body size is a better hint than sizeHint's
// guess for messages that carry a large payload: the pooled buffer is then
// big enough, where growing it would leave a fresh one to the collector.
func encodeEnvelopeValue(env *envelope, sizeHint int, mt *msgType) ([]byte, error) {
	learned := 0
	if mt != nil {
		learned = int(mt.bodySize.Load())
	}
	pooled := newWireBuffer(headerSizeHint(env) + max(sizeHint, learned) + 5)
	b := appendEnvelopeHeader(pooled, env)
	b = append(b, 0xc6, 0, 0, 0, 0)
	at := len(b)
	var err error
	if mt != nil {
		b, err = mt.codec.AppendValue(b, env.value)
	} else {
		b, err = codec.AppendValue(b, env.value)
	}
	if cap(b) != cap(pooled) {
		transport.ReleaseBuffer(pooled) // b outgrew it
	}
	if err != nil {
		transport.ReleaseBuffer(b)
		return nil, err
	}
	n := len(b) - at
	if mt != nil {
		next := 0
		if n > sizeHint {
			next = min(n, math.MaxInt32)
		}
		if next != learned {
			mt.bodySize.Store(int32(next))
		}
	}
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
	env := &envelope{}
	if err := env.decode(msg); err != nil {
		return nil, err
	}
	return env, nil
}

// decode fills the zero envelope env from msg, an ordinary envelope (see
// decodeEnvelope).
func (env *envelope) decode(msg []byte) error {
	r, err := env.decodeHeader(msg)
	if err != nil {
		return err
	}
	if env.kind != kindMessage {
		return fmt.Errorf("core: envelope: a batch where one message was expected")
	}
	return env.decodeBody(&r)
}

// decodeFrame decodes msg, an envelope or a batch, into the zero envelope
// env, and calls each with env holding each message in turn: only its
// body differs from one to the next.
func (env *envelope) decodeFrame(msg []byte, each func(env *envelope)) error {
	r, err := env.decodeHeader(msg)
	if err != nil {
		return err
	}
	if env.kind == kindMessage {
		if err := env.decodeBody(&r); err != nil {
			return err
		}
		each(env)
		return nil
	}
	bodies, err := batchBodies(&r.Reader)
	if err != nil {
		return err
	}
	if r.Off != len(msg) {
		return fmt.Errorf("core: envelope: %d trailing bytes", len(msg)-r.Off)
	}
	env.kind = kindMessage // each message is an ordinary one
	for len(bodies) > 0 {
		env.body, bodies = firstBin(bodies)
		each(env)
	}
	return nil
}

func (env *envelope) decodeBody(r *reader) error {
	var err error
	if env.body, err = r.Bin(); err != nil {
		return err
	}
	if r.Off != len(r.B) {
		return fmt.Errorf("core: envelope: %d trailing bytes", len(r.B)-r.Off)
	}
	return nil
}

// decodeHeader fills env from msg's fields up to the body (or bodies),
// where it leaves the returned reader.
func (env *envelope) decodeHeader(msg []byte) (reader, error) {
	r := reader{msgp.Reader{B: msg}}
	n, err := r.ArrayLen()
	if err != nil {
		return r, err
	}
	if n != 8 {
		return r, fmt.Errorf("core: envelope: want 8 fields, got %d", n)
	}
	v, err := r.Uint()
	if err != nil {
		return r, err
	}
	if v != envelopeVersion {
		return r, fmt.Errorf("core: envelope: version %d, want %d", v, envelopeVersion)
	}
	k, err := r.Uint()
	if err != nil {
		return r, err
	}
	if k != uint64(kindMessage) && k != uint64(kindBatch) {
		return r, fmt.Errorf("core: envelope: unknown kind %d", k)
	}
	env.kind = uint8(k)
	if env.sender, err = r.actorID(roleSender); err != nil {
		return r, err
	}
	if env.dest.Actor, err = r.actorID(roleDest); err != nil {
		return r, err
	}
	if env.dest.Index, err = r.Uint(); err != nil {
		return r, err
	}
	name, err := r.StrBytes()
	if err != nil {
		return r, err
	}
	if t, ok := lookupMessageTypeBytes(name); ok {
		env.typeName, env.mtype = t.name, t
	} else {
		env.typeName = string(name)
	}
	nh, err := r.MapLen()
	if err != nil {
		return r, err
	}
	if nh > (len(msg)-r.Off)/2 { // a header is two strings of a byte at least
		return r, msgp.ErrShort
	}
	if nh > 0 {
		// Sized by what the frame can hold, not by what it claims: a map
		// slot costs far more than the two bytes of an empty header.
		env.headers = make(map[string]string, min(nh, 8))
		for range nh {
			k, err := r.Str()
			if err != nil {
				return r, err
			}
			v, err := r.Str()
			if err != nil {
				return r, err
			}
			env.headers[k] = v
		}
	}
	return r, nil
}
