package codec

import (
	"errors"
	"fmt"

	"github.com/actormesh/actormesh/internal/msgp"
)

var errTooMany = errors.New("msgpack: more elements than input bytes")

// skip advances r past one value, accepting exactly the codes
// vmihailenco's Decoder.Skip accepts. It keeps a count of values still to
// skip instead of recursing, so hostile nesting cannot exhaust the stack.
func skip(r *msgp.Reader) error {
	pending := 1
	for pending > 0 {
		pending--
		c, err := r.Byte()
		if err != nil {
			return err
		}
		var n int
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
			continue
		case c&0xf0 == 0x80:
			pending += 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			pending += int(c & 0x0f)
		case c&0xe0 == 0xa0:
			n = int(c & 0x1f)
		case c == 0xcc || c == 0xd0:
			n = 1
		case c == 0xcd || c == 0xd1:
			n = 2
		case c == 0xce || c == 0xd2 || c == 0xca:
			n = 4
		case c == 0xcf || c == 0xd3 || c == 0xcb:
			n = 8
		case c == 0xc4 || c == 0xd9:
			n, err = beLen(r, 1)
		case c == 0xc5 || c == 0xda:
			n, err = beLen(r, 2)
		case c == 0xc6 || c == 0xdb:
			n, err = beLen(r, 4)
		case c == 0xdc || c == 0xdd:
			n, err = beLen(r, 2<<(c-0xdc))
			pending += n
			n = 0
		case c == 0xde || c == 0xdf:
			n, err = beLen(r, 2<<(c-0xde))
			pending += 2 * n
			n = 0
		case c >= 0xd4 && c <= 0xd8: // fixext: type byte and 1..16 bytes
			n = 1 + 1<<(c-0xd4)
		case c >= 0xc7 && c <= 0xc9: // ext 8/16/32: length, type, body
			n, err = beLen(r, 1<<(c-0xc7))
			n++
		default:
			return fmt.Errorf("msgpack: unknown code 0x%02x", c)
		}
		if err != nil {
			return err
		}
		if _, err := r.Need(n); err != nil {
			return err
		}
		// Every pending value takes at least a byte.
		if pending > len(r.B)-r.Off {
			return errTooMany
		}
	}
	return nil
}

// beLen reads a big-endian length of size bytes.
func beLen(r *msgp.Reader, size int) (int, error) {
	s, err := r.Need(size)
	if err != nil {
		return 0, err
	}
	var u uint64
	for _, c := range s {
		u = u<<8 | uint64(c)
	}
	return int(u), nil
}

// SkipOne returns how many bytes of b its first msgpack value takes, as
// vmihailenco's Decoder.Skip would read it; it never allocates.
func SkipOne(b []byte) (int, error) {
	r := msgp.Reader{B: b}
	err := skip(&r)
	return r.Off, err
}
