package transport

import (
	"bufio"
	"bytes"
	"testing"
)

// The wire format is a contract with other processes (and other versions):
// these tests pin it. Changing any of them needs a protocol version bump and
// an update of spec.md.
func TestWireConstants(t *testing.T) {
	pins := []struct {
		name      string
		got, want int
	}{
		{"protoVersion", int(protoVersion), 1},
		{"preambleSize", preambleSize, 10},
		{"headerSize", headerSize, 5},
		{"seqSize", seqSize, 8},
		{"frameData", int(frameData), 1},
		{"frameAck", int(frameAck), 2},
		{"framePing", int(framePing), 3},
		{"framePong", int(framePong), 4},
		{"frameClose", int(frameClose), 5},
		{"closeNormal", int(closeNormal), 0},
		{"closeRejected", int(closeRejected), 1},
		{"maxCloseReason", maxCloseReason, 1024},
		{"maxHandshakeBody", maxHandshakeBody, 65536},
		{"DefaultMaxFrameSize", DefaultMaxFrameSize, 1 << 30},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %d, want %d", p.name, p.got, p.want)
		}
	}
	if protoMagic != "AMSH" {
		t.Errorf("magic %q", protoMagic)
	}
}

func TestFrameLayout(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writeDataHeader(w, 0x0102030405060708, 3)
	w.WriteString("abc")
	writeAck(w, 7)
	writeEmpty(w, framePing)
	writeEmpty(w, framePong)
	writeClose(w, closeRejected, "no")
	w.Flush()
	want := []byte{
		1, 0, 0, 0, 11, 1, 2, 3, 4, 5, 6, 7, 8, 'a', 'b', 'c', // data: type, len=8+3, seq, payload
		2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7, // ack 7
		3, 0, 0, 0, 0, // ping
		4, 0, 0, 0, 0, // pong
		5, 0, 0, 0, 3, 1, 'n', 'o', // close: code 1, reason
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("encoded\n%v\nwant\n%v", buf.Bytes(), want)
	}
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(want)), maxPayload: 16}
	for _, exp := range []frame{{typ: frameData, seq: 0x0102030405060708, payload: []byte("abc")}, {typ: frameAck, seq: 7}, {typ: framePing}, {typ: framePong}, {typ: frameClose, payload: []byte{1, 'n', 'o'}}} {
		f, err := fr.readFrame()
		if err != nil || f.typ != exp.typ || f.seq != exp.seq || !bytes.Equal(f.payload, exp.payload) {
			t.Fatalf("decoded %+v, %v; want %+v", f, err, exp)
		}
	}
}

func TestPreambleLayout(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	if err := writePreamble(w, &hello{Version: protoVersion}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if string(b[:4]) != "AMSH" || b[4] != 0 || b[5] != 1 || int(b[6])<<24|int(b[7])<<16|int(b[8])<<8|int(b[9]) != len(b)-10 {
		t.Fatalf("preamble % x", b[:10])
	}
	v, body, err := readPreamble(bytes.NewReader(b))
	if err != nil || v != protoVersion || len(body) != len(b)-10 {
		t.Fatalf("readPreamble = %d, %d bytes, %v", v, len(body), err)
	}
}
