package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/actormesh/actormesh/transport"
	"github.com/vmihailenco/msgpack/v5"
)

// The envelope travels as one msgpack array. It is written and read by hand
// (rather than through reflection) because every remote message pays for it;
// the message body inside is ordinary reflection-based msgpack.

const envelopeVersion = 1

// Envelope kinds.
const (
	kindMessage uint8 = iota // an ordinary message to a port
)

var errShort = errors.New("core: truncated envelope")

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendMapLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xde, byte(n>>8), byte(n))
	}
	return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendUint(b []byte, u uint64) []byte {
	switch {
	case u < 128:
		return append(b, byte(u))
	case u <= math.MaxUint8:
		return append(b, 0xcc, byte(u))
	case u <= math.MaxUint16:
		return append(b, 0xcd, byte(u>>8), byte(u))
	case u <= math.MaxUint32:
		return append(b, 0xce, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), u)
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// reader decodes the subset of msgpack the envelope uses. Every method
// checks bounds, so arbitrary input yields an error, never a panic.
type reader struct {
	b   []byte
	off int
}

func (r *reader) need(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, errShort
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) byte() (byte, error) {
	s, err := r.need(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (r *reader) be(n int) (uint64, error) {
	s, err := r.need(n)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range s {
		u = u<<8 | uint64(c)
	}
	return u, nil
}

func (r *reader) arrayLen() (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		u, err := r.be(2)
		return int(u), err
	case c == 0xdd:
		u, err := r.be(4)
		return int(u), err
	}
	return 0, fmt.Errorf("core: envelope: want array, got byte 0x%02x", c)
}

func (r *reader) mapLen() (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		u, err := r.be(2)
		return int(u), err
	case c == 0xdf:
		u, err := r.be(4)
		return int(u), err
	}
	return 0, fmt.Errorf("core: envelope: want map, got byte 0x%02x", c)
}

func (r *reader) uint() (uint64, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return uint64(c), nil
	case c == 0xcc:
		return r.be(1)
	case c == 0xcd:
		return r.be(2)
	case c == 0xce:
		return r.be(4)
	case c == 0xcf:
		return r.be(8)
	}
	return 0, fmt.Errorf("core: envelope: want unsigned integer, got byte 0x%02x", c)
}

func (r *reader) strBytes() ([]byte, error) {
	c, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n, err = r.be(1)
	case c == 0xda:
		n, err = r.be(2)
	case c == 0xdb:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("core: envelope: want string, got byte 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.need(int(n))
}

func (r *reader) str() (string, error) {
	s, err := r.strBytes()
	return string(s), err
}

func (r *reader) bin() ([]byte, error) {
	c, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch c {
	case 0xc4:
		n, err = r.be(1)
	case 0xc5:
		n, err = r.be(2)
	case 0xc6:
		n, err = r.be(4)
	default:
		return nil, fmt.Errorf("core: envelope: want binary, got byte 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.need(int(n))
}

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
		return appendStr(b, "")
	}
	t := a.Transport.String()
	if a.Transport == transport.Local && a.Address == "" {
		return appendStr(b, "local:0")
	}
	n := len(t) + 1 + len(a.Address)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	default:
		b = append(b, 0xda, byte(n>>8), byte(n))
	}
	b = append(b, t...)
	b = append(b, ':')
	return append(b, a.Address...)
}

func appendActorID(b []byte, a ActorID) []byte {
	b = appendAddr(b, a.Proc.Addr)
	b = appendStr(b, a.Proc.Name)
	b = appendStr(b, a.Name)
	return appendUint(b, a.PID)
}

func (r *reader) actorID() (ActorID, error) {
	start := r.off
	addr, err := r.strBytes()
	if err != nil {
		return ActorID{}, err
	}
	procName, err := r.strBytes()
	if err != nil {
		return ActorID{}, err
	}
	name, err := r.strBytes()
	if err != nil {
		return ActorID{}, err
	}
	pid, err := r.uint()
	if err != nil {
		return ActorID{}, err
	}
	raw := r.b[start:r.off]
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
	b = appendArrayLen(b, 8)
	b = appendUint(b, envelopeVersion)
	b = appendUint(b, uint64(env.kind))
	b = appendActorID(b, env.sender)
	b = appendActorID(b, env.dest.Actor)
	b = appendUint(b, env.dest.Index)
	b = appendStr(b, env.typeName)
	b = appendMapLen(b, len(env.headers))
	for k, v := range env.headers {
		b = appendStr(b, k)
		b = appendStr(b, v)
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
	b = appendBinHeader(b, len(body))
	return append(b, body...)
}

// appendWriter lets the msgpack encoder write straight into the envelope.
// It grows its buffer from the transport's pool, so that a large message
// is written into a recycled buffer rather than fresh, page-faulting memory.
type appendWriter struct {
	b []byte
}

func (w *appendWriter) reserve(n int) {
	if len(w.b)+n <= cap(w.b) {
		return
	}
	nb := transport.AllocBuffer(max(2*cap(w.b), len(w.b)+n))[:len(w.b)]
	copy(nb, w.b)
	transport.ReleaseBuffer(w.b)
	w.b = nb
}

func (w *appendWriter) Write(p []byte) (int, error) {
	w.reserve(len(p))
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.reserve(1)
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.reserve(len(s))
	w.b = append(w.b, s...)
	return len(s), nil
}

type bodyEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var bodyEncoders = sync.Pool{New: func() any {
	e := &bodyEncoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	e.enc.UseCompactInts(true)
	return e
}}

// encodeEnvelopeValue encodes env with its Go value as the body, in one
// buffer of its own (often from the transport's pool, to which the
// channel returns it once delivered): the body's length is patched into a
// fixed-width bin32 header (valid msgpack at any size) once the encoder
// has written it.
func encodeEnvelopeValue(env *envelope, sizeHint int) ([]byte, error) {
	e := bodyEncoders.Get().(*bodyEncoder)
	b := appendEnvelopeHeader(newWireBuffer(headerSizeHint(env)+sizeHint+5), env)
	b = append(b, 0xc6, 0, 0, 0, 0)
	at := len(b)
	e.w.b = b
	err := e.enc.Encode(env.value)
	b = e.w.b
	e.w.b = nil
	bodyEncoders.Put(e)
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
	r := reader{b: msg}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if n != 8 {
		return nil, fmt.Errorf("core: envelope: want 8 fields, got %d", n)
	}
	v, err := r.uint()
	if err != nil {
		return nil, err
	}
	if v != envelopeVersion {
		return nil, fmt.Errorf("core: envelope: version %d, want %d", v, envelopeVersion)
	}
	env := &envelope{}
	k, err := r.uint()
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
	if env.dest.Index, err = r.uint(); err != nil {
		return nil, err
	}
	if env.typeName, err = r.str(); err != nil {
		return nil, err
	}
	nh, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	if nh > len(msg) {
		return nil, errShort
	}
	if nh > 0 {
		env.headers = make(map[string]string, nh)
		for range nh {
			k, err := r.str()
			if err != nil {
				return nil, err
			}
			v, err := r.str()
			if err != nil {
				return nil, err
			}
			env.headers[k] = v
		}
	}
	if env.body, err = r.bin(); err != nil {
		return nil, err
	}
	if r.off != len(msg) {
		return nil, fmt.Errorf("core: envelope: %d trailing bytes", len(msg)-r.off)
	}
	return env, nil
}
