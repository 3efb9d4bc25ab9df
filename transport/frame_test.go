package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func FuzzFrameDecoder(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 11, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 'b', 'c'})
	f.Add([]byte{2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, 3, 0, 0, 0, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 1, 2})
	f.Add([]byte{1, 0, 0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) // 1 MiB claimed, truncated
	f.Add([]byte{9, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 0, 1, 0})
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{})
	const max = 4 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := frameReader{r: bufio.NewReader(bytes.NewReader(data)), maxPayload: max}
		for {
			fm, err := fr.readFrame()
			if err != nil {
				return
			}
			if len(fm.payload) > max || cap(fm.payload) > max+seqSize {
				t.Fatalf("payload of %d bytes (cap %d) exceeds the maximum", len(fm.payload), cap(fm.payload))
			}
			// Allocation is bounded by what actually arrived, not by the header.
			if cap(fm.payload) > len(data) && cap(fm.payload) > exactAllocLimit {
				t.Fatalf("allocated %d bytes for %d input bytes", cap(fm.payload), len(data))
			}
		}
	})
}

func TestFrameDecoderErrors(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], n)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"truncated header", []byte{1, 0}, io.ErrUnexpectedEOF},
		{"oversized", hdr(frameData, 1<<30), errProtocol},
		{"unknown type", hdr(42, 0), errProtocol},
		{"short data", hdr(frameData, 3), errProtocol},
		{"truncated data", append(hdr(frameData, 20), 1, 2, 3), io.ErrUnexpectedEOF},
		{"long ack", hdr(frameAck, 9), errProtocol},
		{"ping with body", hdr(framePing, 1), errProtocol},
		{"empty close", hdr(frameClose, 0), errProtocol},
		{"huge truncated", append(hdr(frameData, 64<<20), make([]byte, 100)...), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := frameReader{r: bufio.NewReader(bytes.NewReader(tt.in)), maxPayload: 128 << 20}
			if tt.name == "oversized" {
				fr.maxPayload = 1024
			}
			_, err := fr.readFrame()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
