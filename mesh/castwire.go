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
//	 Type str, Ranks [int...], TableKey str, Procs bin, Body bin]
const (
	castFields  = 10
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
		b = make([]byte, 0, 64+len(m.Mesh)+len(m.Extent)+len(sender)+len(m.Type)+2*len(m.Ranks)+len(m.TableKey)+len(m.Procs)+len(m.Body))
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
	b = msgp.AppendStr(b, m.TableKey)
	b = msgp.AppendBin(b, m.Procs)
	return msgp.AppendBin(b, m.Body)
}

// setCastNode patches the node of an encoded cast.
func setCastNode(b []byte, node int) { binary.BigEndian.PutUint32(b[castNodeOff:], uint32(node)) }

// parseCast decodes an encoded cast; Procs and Body alias b, and Sender
// stays unparsed (senderText) until someone needs it.
func parseCast(b []byte, m *castMsg) error { return parseCastMemo(b, m, nil, nil, nil) }

// castMemo is what a comm kept of the last cast it relayed. A mesh's
// casts repeat everything but the body: the same mesh, view, sender,
// ranks and proc table. A hop that finds them unchanged reuses the
// strings, ranks and parsed table (and the delivery's headers) instead
// of allocating and parsing them again. A memo is never modified once
// published, so hops on several connections can share it.
type castMemo struct {
	mesh, extent, sender, typ string
	ranksRaw                  string // the encoded ranks
	ranks                     []int
	tableKey, procs           string // TableKey and Procs
	table                     *castTable
	headers                   map[string]string // of headersNode's delivery; nil if none
	headersNode               int
}

// parseCastMemo is parseCast reusing what last (if not nil) holds wherever
// the bytes match it. When next is not nil, it gets the memo of this
// cast, last itself when nothing changed, with its table resolved through
// tables (the cast's own, or an installed one it names).
func parseCastMemo(b []byte, m *castMsg, last *castMemo, next **castMemo, tables *castTables) error {
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
	if last == nil {
		last = &castMemo{} // matches nothing: same starts false
	}
	same := last.ranks != nil
	str := func(cached string) (string, error) {
		v, err := r.StrBytes()
		if err != nil {
			return "", err
		}
		if same && string(v) == cached {
			return cached, nil
		}
		same = false
		return string(v), nil
	}
	if m.Mesh, err = str(last.mesh); err != nil {
		return err
	}
	if m.Extent, err = str(last.extent); err != nil {
		return err
	}
	if m.senderText, err = str(last.sender); err != nil {
		return err
	}
	if m.Type, err = str(last.typ); err != nil {
		return err
	}
	ranksStart := r.Off
	nr, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if nr > len(b)-r.Off {
		return msgp.ErrShort
	}
	for range nr {
		if _, err := r.Int(); err != nil {
			return err
		}
	}
	ranksRaw := b[ranksStart:r.Off]
	if last.ranks != nil && string(ranksRaw) == last.ranksRaw {
		m.Ranks = last.ranks
	} else {
		same = false
		m.Ranks = make([]int, nr)
		rr := msgp.Reader{B: ranksRaw}
		rr.ArrayLen()
		for i := range m.Ranks {
			v, _ := rr.Int() // read once above already
			m.Ranks[i] = int(v)
		}
	}
	key, err := r.StrBytes()
	if err != nil {
		return err
	}
	if m.Procs, err = r.Bin(); err != nil {
		return err
	}
	sameTable := last.ranks != nil && string(key) == last.tableKey && string(m.Procs) == last.procs
	if sameTable {
		m.TableKey = last.tableKey
	} else {
		m.TableKey = string(key)
	}
	if m.Body, err = r.Bin(); err != nil {
		return err
	}
	if r.Off != len(b) {
		return fmt.Errorf("mesh: cast: %d trailing bytes", len(b)-r.Off)
	}
	switch {
	case next == nil:
	case same && sameTable:
		*next = last
	default:
		nm := &castMemo{mesh: m.Mesh, extent: m.Extent, sender: m.senderText, typ: m.Type,
			ranksRaw: string(ranksRaw), ranks: m.Ranks, tableKey: m.TableKey, headersNode: m.Node}
		if m.Node >= 0 && m.Node < len(m.Ranks) && m.Ranks[m.Node] >= 0 {
			nm.headers = castHeaders(m)
		}
		if sameTable {
			nm.procs, nm.table = last.procs, last.table
		} else {
			if tables == nil {
				tables = &castTables{}
			}
			t, err := tables.resolve(m)
			if err != nil {
				return err
			}
			nm.procs, nm.table = string(m.Procs), t
		}
		*next = nm
	}
	return nil
}
