package codec

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/actormesh/actormesh/internal/msgp"
	"github.com/vmihailenco/msgpack/v5"
)

// ID stands in for the runtime's ActorID: a custom vmihailenco encoding
// plus the fast interfaces producing the same bytes.
type ID struct {
	Name string
	N    uint64
}

func (id ID) EncodeMsgpack(e *msgpack.Encoder) error {
	if err := e.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := e.EncodeString(id.Name); err != nil {
		return err
	}
	return e.EncodeUint(id.N)
}

func (id *ID) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return errBadID
	}
	if id.Name, err = d.DecodeString(); err != nil {
		return err
	}
	id.N, err = d.DecodeUint64()
	return err
}

var fastCalls int

func (id *ID) AppendMsgpack(b []byte) ([]byte, error) {
	fastCalls++
	return msgp.AppendUint(msgp.AppendStr(msgp.AppendArrayLen(b, 2), id.Name), id.N), nil
}

func (id *ID) DecodeMsgpackAt(r msgp.Reader) (int, error) {
	err := id.decodeFrom(&r)
	return r.Off, err
}

func (id *ID) decodeFrom(r *msgp.Reader) error {
	fastCalls++
	n, err := r.ArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return errBadID
	}
	if id.Name, err = r.Str(); err != nil {
		return err
	}
	id.N, err = r.Uint()
	return err
}

var errBadID = reflect.ValueOf(msgpack.Unmarshal).Call(
	[]reflect.Value{reflect.ValueOf([]byte{0xc1}), reflect.ValueOf(new(int))})[0].Interface().(error)

type WithIDs struct {
	From ID
	To   *ID
	All  []ID
}

func TestFastInterfaces(t *testing.T) {
	fastCalls = 0
	check(t, WithIDs{})
	check(t, WithIDs{From: ID{"a", 1}, To: &ID{"b", 300}, All: []ID{{"c", 1 << 40}}})
	if fastCalls == 0 {
		t.Fatal("Appender/FastDecoder never used")
	}
	if n := Of(reflect.TypeOf(ID{})).root.op; n != opExt {
		t.Fatalf("ID plan op = %d, want opExt", n)
	}
	v := WithIDs{From: ID{"a", 1}, To: &ID{"b", 2}}
	c := Of(reflect.TypeOf(v))
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(50, func() { _, _ = c.Append(buf[:0], unsafe.Pointer(&v)) }); n != 0 {
		t.Errorf("Append via Appender allocates %v times", n)
	}
}
