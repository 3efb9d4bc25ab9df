package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// castMsg travels as a hand-written msgpack array, because every hop of
// every cast decodes and re-encodes it: reflection would cost more than
// the rest of the hop. Node comes first as a fixed-width uint32, so a hop
// forwards the bytes it received with only those four bytes patched.
//
//	[Node uint32, Fanout uint, Mesh str, Extent str, Sender str (text id),
//	 Type str, Ranks [int...], Procs bin, Body bin]
const (
	castFields  = 9
	castNodeOff = 2 // after the array header (1 byte) and uint32's 0xce
)

var (
	_ msgpack.CustomEncoder = castMsg{}
	_ msgpack.CustomDecoder = (*castMsg)(nil)
)

func (m castMsg) EncodeMsgpack(enc *msgpack.Encoder) error {
	return msgpack.RawMessage(appendCast(nil, &m)).EncodeMsgpack(enc)
}

func (m *castMsg) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	return parseCast(raw, m)
}

func appendCast(b []byte, m *castMsg) []byte {
	sender := m.senderText
	if sender == "" && !m.Sender.IsZero() {
		sender = m.Sender.String()
	}
	if b == nil {
		b = make([]byte, 0, 64+len(m.Mesh)+len(m.Extent)+len(sender)+len(m.Type)+2*len(m.Ranks)+len(m.Procs)+len(m.Body))
	}
	b = append(b, 0x90|castFields, 0xce)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Node))
	b = appendInt(b, int64(m.Fanout))
	b = appendStr(b, m.Mesh)
	b = appendStr(b, m.Extent)
	b = appendStr(b, sender)
	b = appendStr(b, m.Type)
	b = appendArrayLen(b, len(m.Ranks))
	for _, r := range m.Ranks {
		b = appendInt(b, int64(r))
	}
	b = appendBin(b, m.Procs)
	return appendBin(b, m.Body)
}

// setCastNode patches the node of an encoded cast.
func setCastNode(b []byte, node int) { binary.BigEndian.PutUint32(b[castNodeOff:], uint32(node)) }

// parseCast decodes an encoded cast; Procs and Body alias b, and Sender
// stays unparsed (senderText) until someone needs it.
func parseCast(b []byte, m *castMsg) error {
	r := castReader{b: b}
	n, err := r.arrayLen()
	if err != nil {
		return err
	}
	if n != castFields {
		return fmt.Errorf("mesh: cast: want %d fields, got %d", castFields, n)
	}
	if r.off+5 > len(b) || b[r.off] != 0xce {
		return errors.New("mesh: cast: malformed node")
	}
	*m = castMsg{}
	m.Node = int(binary.BigEndian.Uint32(b[r.off+1:]))
	r.off += 5
	fanout, err := r.int()
	if err != nil {
		return err
	}
	m.Fanout = int(fanout)
	if m.Mesh, err = r.str(); err != nil {
		return err
	}
	if m.Extent, err = r.str(); err != nil {
		return err
	}
	if m.senderText, err = r.str(); err != nil {
		return err
	}
	if m.Type, err = r.str(); err != nil {
		return err
	}
	nr, err := r.arrayLen()
	if err != nil {
		return err
	}
	if nr > len(b)-r.off {
		return errCastShort
	}
	m.Ranks = make([]int, nr)
	for i := range m.Ranks {
		v, err := r.int()
		if err != nil {
			return err
		}
		m.Ranks[i] = int(v)
	}
	if m.Procs, err = r.bin(); err != nil {
		return err
	}
	if m.Body, err = r.bin(); err != nil {
		return err
	}
	if r.off != len(b) {
		return fmt.Errorf("mesh: cast: %d trailing bytes", len(b)-r.off)
	}
	return nil
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v < 128:
		return append(b, byte(v))
	case v < 0 && v >= -32:
		return append(b, byte(int8(v)))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(int32(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
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
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b []byte, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, p...)
}

var errCastShort = errors.New("mesh: cast: truncated")

// castReader reads the msgpack subset appendCast writes; arbitrary input
// yields an error, never a panic.
type castReader struct {
	b   []byte
	off int
}

func (r *castReader) need(n int) ([]byte, error) {
	if n < 0 || len(r.b)-r.off < n {
		return nil, errCastShort
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *castReader) be(n int) (uint64, error) {
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

func (r *castReader) byte() (byte, error) {
	s, err := r.need(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (r *castReader) arrayLen() (int, error) {
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
	return 0, fmt.Errorf("mesh: cast: want array, got byte 0x%02x", c)
}

func (r *castReader) int() (int64, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		u, err := r.be(1 << (c - 0xcc))
		if u > math.MaxInt64 {
			return 0, errors.New("mesh: cast: integer overflow")
		}
		return int64(u), err
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		u, err := r.be(n)
		shift := 64 - 8*n
		return int64(u<<shift) >> shift, err
	}
	return 0, fmt.Errorf("mesh: cast: want integer, got byte 0x%02x", c)
}

func (r *castReader) str() (string, error) {
	c, err := r.byte()
	if err != nil {
		return "", err
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
		return "", fmt.Errorf("mesh: cast: want string, got byte 0x%02x", c)
	}
	if err != nil {
		return "", err
	}
	s, err := r.need(int(n))
	return string(s), err
}

func (r *castReader) bin() ([]byte, error) {
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
		return nil, fmt.Errorf("mesh: cast: want binary, got byte 0x%02x", c)
	}
	if err != nil {
		return nil, err
	}
	return r.need(int(n))
}
