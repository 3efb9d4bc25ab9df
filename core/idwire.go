package core

import (
	"fmt"

	"github.com/actormesh/actormesh/internal/msgp"
)

// The ids' msgpack forms (see EncodeMsgpack in ids.go) written and read
// without vmihailenco's Encoder and Decoder, for internal/codec: a PortRef
// is in nearly every request. The bytes are the same; input these readers
// do not take (nil, bin for str) fails here and is decoded again by
// DecodeMsgpack.

func (p ProcID) AppendMsgpack(b []byte) ([]byte, error) {
	b = msgp.AppendArrayLen(b, 2)
	b = msgp.AppendStr(b, addrText(p.Addr))
	return msgp.AppendStr(b, p.Name), nil
}

// The decoders take the reader by value and return the offset past the
// value (see codec.FastDecoder): codec calls them through an interface,
// through which a pointer would make every decode allocate the reader.

func (p *ProcID) DecodeMsgpackAt(r msgp.Reader) (int, error) {
	if err := wantArray(&r, 2, "proc id"); err != nil {
		return r.Off, err
	}
	addr, err := r.StrBytes()
	if err != nil {
		return r.Off, err
	}
	if p.Addr, err = parseAddrCached(string(addr)); err != nil {
		return r.Off, err
	}
	p.Name, err = r.Str()
	return r.Off, err
}

func (a ActorID) AppendMsgpack(b []byte) ([]byte, error) {
	return appendActorID(msgp.AppendArrayLen(b, 4), a), nil
}

func (a *ActorID) DecodeMsgpackAt(r msgp.Reader) (int, error) {
	if err := wantArray(&r, 4, "actor id"); err != nil {
		return r.Off, err
	}
	in, err := readActorFields(&r)
	if err != nil {
		return r.Off, err
	}
	*a = in.id
	return r.Off, nil
}

func (p PortID) AppendMsgpack(b []byte) ([]byte, error) {
	return msgp.AppendUint(appendActorID(msgp.AppendArrayLen(b, 5), p.Actor), p.Index), nil
}

func (p *PortID) DecodeMsgpackAt(r msgp.Reader) (int, error) {
	if err := wantArray(&r, 5, "port id"); err != nil {
		return r.Off, err
	}
	in, err := readActorFields(&r)
	if err != nil {
		return r.Off, err
	}
	p.Actor = in.id
	p.Index, err = r.Uint()
	return r.Off, err
}

func (r PortRef[T]) AppendMsgpack(b []byte) ([]byte, error) { return r.ID.AppendMsgpack(b) }

func (r *PortRef[T]) DecodeMsgpackAt(rd msgp.Reader) (int, error) { return r.ID.DecodeMsgpackAt(rd) }

func wantArray(r *msgp.Reader, n int, what string) error {
	got, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("core: %s: want array of %d, got %d", what, n, got)
	}
	return nil
}
