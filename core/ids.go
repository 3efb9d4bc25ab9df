package core

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/actormesh/actormesh/transport"
	"github.com/vmihailenco/msgpack/v5"
)

// ProcID names a proc by the channel address it serves and a name that is
// unique at that address. Text form: "unix:@k3x,root".
type ProcID struct {
	Addr transport.Addr
	Name string
}

// ActorID names one actor: its proc, its name and a pid. Root actors have
// pid 0; children keep the root's name and take pids from its counter.
// Text form: "unix:@k3x,root,client[0]".
type ActorID struct {
	Proc ProcID
	Name string
	PID  uint64
}

// PortID names one port of an actor. Text form: "unix:@k3x,root,client[0][1024]".
type PortID struct {
	Actor ActorID
	Index uint64
}

// ActorPort is the port index at which an actor receives its messages.
// Ephemeral ports opened by an actor or client start at FirstEphemeralPort
// and are never reused within one mailbox.
const (
	ActorPort          uint64 = 0
	UndeliverablePort  uint64 = 1
	SupervisionPort    uint64 = 2
	FirstEphemeralPort uint64 = 1024
)

// ActorID returns the id of the actor named name with the given pid on p.
func (p ProcID) ActorID(name string, pid uint64) ActorID {
	return ActorID{Proc: p, Name: name, PID: pid}
}

// Port returns the id of port index of a.
func (a ActorID) Port(index uint64) PortID { return PortID{Actor: a, Index: index} }

// IsZero reports whether p is the zero ProcID.
func (p ProcID) IsZero() bool { return p.Addr.Transport == 0 && p.Name == "" }

// IsZero reports whether a is the zero ActorID.
func (a ActorID) IsZero() bool { return a.Proc.IsZero() && a.Name == "" && a.PID == 0 }

func (p ProcID) String() string { return p.Addr.String() + "," + p.Name }

func (a ActorID) String() string {
	return a.Proc.String() + "," + a.Name + "[" + strconv.FormatUint(a.PID, 10) + "]"
}

func (p PortID) String() string {
	return p.Actor.String() + "[" + strconv.FormatUint(p.Index, 10) + "]"
}

// ValidName reports whether s can name a proc or an actor: a letter or '_'
// first, then letters, digits, '_', '-' or '.'. Names never contain ',' or
// brackets, which keeps the text forms unambiguous.
func ValidName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !ValidName(s) {
		return fmt.Errorf("core: invalid %s name %q: want a letter or '_' followed by letters, digits, '_', '-' or '.'", kind, s)
	}
	return nil
}

// ParseProcID parses "ADDR,NAME".
func ParseProcID(s string) (ProcID, error) {
	p, rest, err := parseProcPrefix(s)
	if err != nil {
		return ProcID{}, err
	}
	if rest != "" {
		return ProcID{}, fmt.Errorf("core: invalid proc id %q: trailing %q", s, rest)
	}
	return p, nil
}

// ParseActorID parses "ADDR,PROC,NAME[PID]"; "ADDR,PROC,NAME" means pid 0.
func ParseActorID(s string) (ActorID, error) {
	a, idx, err := parseActorPrefix(s)
	if err != nil {
		return ActorID{}, err
	}
	if len(idx) != 0 {
		return ActorID{}, fmt.Errorf("core: invalid actor id %q: it names a port", s)
	}
	return a, nil
}

// ParsePortID parses "ADDR,PROC,NAME[PID][PORT]".
func ParsePortID(s string) (PortID, error) {
	a, idx, err := parseActorPrefix(s)
	if err != nil {
		return PortID{}, err
	}
	if len(idx) != 1 {
		return PortID{}, fmt.Errorf("core: invalid port id %q: want NAME[PID][PORT]", s)
	}
	return PortID{Actor: a, Index: idx[0]}, nil
}

func parseProcPrefix(s string) (ProcID, string, error) {
	addrText, rest, ok := strings.Cut(s, ",")
	if !ok {
		return ProcID{}, "", fmt.Errorf("core: invalid id %q: want ADDR,NAME", s)
	}
	addr, err := transport.ParseAddr(addrText)
	if err != nil {
		return ProcID{}, "", fmt.Errorf("core: invalid id %q: %w", s, err)
	}
	name, rest, _ := strings.Cut(rest, ",")
	if err := checkName("proc", name); err != nil {
		return ProcID{}, "", fmt.Errorf("core: invalid id %q: %w", s, err)
	}
	return ProcID{Addr: addr, Name: name}, rest, nil
}

// parseActorPrefix parses an actor id followed by up to two bracketed numbers
// and returns the numbers after the pid.
func parseActorPrefix(s string) (ActorID, []uint64, error) {
	p, rest, err := parseProcPrefix(s)
	if err != nil {
		return ActorID{}, nil, err
	}
	if rest == "" {
		return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: no actor name", s)
	}
	name, brackets, _ := strings.Cut(rest, "[")
	if brackets != "" || strings.HasSuffix(rest, "[") {
		brackets = "[" + brackets
	}
	if err := checkName("actor", name); err != nil {
		return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: %w", s, err)
	}
	var nums []uint64
	for brackets != "" {
		if brackets[0] != '[' {
			return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: unexpected %q", s, brackets)
		}
		end := strings.IndexByte(brackets, ']')
		if end < 0 {
			return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: unclosed '['", s)
		}
		digits := brackets[1:end]
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != digits {
			return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: %q is not a number", s, digits)
		}
		nums = append(nums, n)
		brackets = brackets[end+1:]
		if len(nums) > 2 {
			return ActorID{}, nil, fmt.Errorf("core: invalid actor id %q: too many indices", s)
		}
	}
	a := ActorID{Proc: p, Name: name}
	if len(nums) > 0 {
		a.PID = nums[0]
		nums = nums[1:]
	}
	return a, nums, nil
}

// addrText is the address's text form, with "" for the zero address so that
// zero ids (an unset PortRef, say) survive encoding.
func addrText(a transport.Addr) string {
	if a.Transport == 0 {
		return ""
	}
	return a.String()
}

// Msgpack forms are compact arrays so that ids embedded in user messages
// (a PortRef in a request, say) cost little on the wire.

var (
	_ msgpack.CustomEncoder = ProcID{}
	_ msgpack.CustomDecoder = (*ProcID)(nil)
	_ msgpack.CustomEncoder = ActorID{}
	_ msgpack.CustomDecoder = (*ActorID)(nil)
	_ msgpack.CustomEncoder = PortID{}
	_ msgpack.CustomDecoder = (*PortID)(nil)
)

func (p ProcID) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(2); err != nil {
		return err
	}
	if err := enc.EncodeString(addrText(p.Addr)); err != nil {
		return err
	}
	return enc.EncodeString(p.Name)
}

func (p *ProcID) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("core: proc id: want array of 2, got %d", n)
	}
	return decodeProcFields(dec, p)
}

func decodeProcFields(dec *msgpack.Decoder, p *ProcID) error {
	addr, err := dec.DecodeString()
	if err != nil {
		return err
	}
	if p.Addr, err = parseAddrCached(addr); err != nil {
		return err
	}
	p.Name, err = dec.DecodeString()
	return err
}

func (a ActorID) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(4); err != nil {
		return err
	}
	if err := enc.EncodeString(addrText(a.Proc.Addr)); err != nil {
		return err
	}
	if err := enc.EncodeString(a.Proc.Name); err != nil {
		return err
	}
	if err := enc.EncodeString(a.Name); err != nil {
		return err
	}
	return enc.EncodeUint(a.PID)
}

func (a *ActorID) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 4 {
		return fmt.Errorf("core: actor id: want array of 4, got %d", n)
	}
	return decodeActorFields(dec, a)
}

func decodeActorFields(dec *msgpack.Decoder, a *ActorID) error {
	if err := decodeProcFields(dec, &a.Proc); err != nil {
		return err
	}
	var err error
	if a.Name, err = dec.DecodeString(); err != nil {
		return err
	}
	a.PID, err = dec.DecodeUint64()
	return err
}

func (p PortID) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(5); err != nil {
		return err
	}
	if err := enc.EncodeString(addrText(p.Actor.Proc.Addr)); err != nil {
		return err
	}
	if err := enc.EncodeString(p.Actor.Proc.Name); err != nil {
		return err
	}
	if err := enc.EncodeString(p.Actor.Name); err != nil {
		return err
	}
	if err := enc.EncodeUint(p.Actor.PID); err != nil {
		return err
	}
	return enc.EncodeUint(p.Index)
}

func (p *PortID) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != 5 {
		return fmt.Errorf("core: port id: want array of 5, got %d", n)
	}
	if err := decodeActorFields(dec, &p.Actor); err != nil {
		return err
	}
	p.Index, err = dec.DecodeUint64()
	return err
}
