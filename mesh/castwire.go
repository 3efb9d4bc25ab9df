package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/actormesh/actormesh/internal/msgp"
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
	b = msgp.AppendInt(b, int64(m.Fanout))
	b = msgp.AppendStr(b, m.Mesh)
	b = msgp.AppendStr(b, m.Extent)
	b = msgp.AppendStr(b, sender)
	b = msgp.AppendStr(b, m.Type)
	b = msgp.AppendArrayLen(b, len(m.Ranks))
	for _, r := range m.Ranks {
		b = msgp.AppendInt(b, int64(r))
	}
	b = msgp.AppendBin(b, m.Procs)
	return msgp.AppendBin(b, m.Body)
}

// setCastNode patches the node of an encoded cast.
func setCastNode(b []byte, node int) { binary.BigEndian.PutUint32(b[castNodeOff:], uint32(node)) }

// parseCast decodes an encoded cast; Procs and Body alias b, and Sender
// stays unparsed (senderText) until someone needs it.
func parseCast(b []byte, m *castMsg) error {
	r := msgp.Reader{B: b}
	n, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if n != castFields {
		return fmt.Errorf("mesh: cast: want %d fields, got %d", castFields, n)
	}
	if r.Off+5 > len(b) || b[r.Off] != 0xce {
		return errors.New("mesh: cast: malformed node")
	}
	*m = castMsg{}
	m.Node = int(binary.BigEndian.Uint32(b[r.Off+1:]))
	r.Off += 5
	fanout, err := r.Int()
	if err != nil {
		return err
	}
	m.Fanout = int(fanout)
	if m.Mesh, err = r.Str(); err != nil {
		return err
	}
	if m.Extent, err = r.Str(); err != nil {
		return err
	}
	if m.senderText, err = r.Str(); err != nil {
		return err
	}
	if m.Type, err = r.Str(); err != nil {
		return err
	}
	nr, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if nr > len(b)-r.Off {
		return msgp.ErrShort
	}
	m.Ranks = make([]int, nr)
	for i := range m.Ranks {
		v, err := r.Int()
		if err != nil {
			return err
		}
		m.Ranks[i] = int(v)
	}
	if m.Procs, err = r.Bin(); err != nil {
		return err
	}
	if m.Body, err = r.Bin(); err != nil {
		return err
	}
	if r.Off != len(b) {
		return fmt.Errorf("mesh: cast: %d trailing bytes", len(b)-r.Off)
	}
	return nil
}
