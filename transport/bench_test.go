package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// Each Sender benchmark has a raw baseline: the same traffic as plain
// length-prefixed frames on a unix socket, to the same kind of peer process.

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func rawConn(b *testing.B, mode string) net.Conn {
	addr := startPeer(b, mode)
	c, err := net.Dial("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkRawUnixPingPong64B(b *testing.B) {
	c := rawConn(b, "rawecho")
	br := bufio.NewReaderSize(c, 64<<10)
	frame := make([]byte, 4+64)
	binary.BigEndian.PutUint32(frame, 64)
	in := make([]byte, 4+64)
	b.SetBytes(64)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, in); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkSenderUnixPingPong64B(b *testing.B) {
	echoes := make(chan []byte, 1)
	back, err := Serve(Unix.Any(), func(m []byte) { echoes <- m }, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer back.Close()
	peer := MustParseAddr(startPeer(b, "echo", peerAddrEnv+"=unix:", peerReplyEnv+"="+back.Addr().String()))
	s, err := Dial(peer, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg := make([]byte, 64)
	ctx := context.Background()
	if err := s.Send(ctx, msg); err != nil { // connect outside the timer
		b.Fatal(err)
	}
	<-echoes
	b.SetBytes(64)
	b.ResetTimer()
	for range b.N {
		if err := s.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		<-echoes
	}
	reportRate(b)
}

func benchRawStream(b *testing.B, size int) {
	c := rawConn(b, "rawsink")
	bw := bufio.NewWriterSize(c, 64<<10)
	msg := make([]byte, size)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(size))
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		bw.Write(hdr[:])
		bw.Write(msg)
	}
	bw.Write([]byte{0, 0, 0, 0})
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil {
		b.Fatal(err)
	}
	reportRate(b)
}

func benchSenderStream(b *testing.B, size int) {
	peer := MustParseAddr(startPeer(b, "sink", peerAddrEnv+"=unix:"))
	s, err := Dial(peer, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	msg := make([]byte, size)
	ctx := context.Background()
	if err := s.Send(ctx, msg); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N - 1 {
		s.Post(msg)
	}
	// FIFO: the last message's ack means the peer's handler saw them all.
	if err := s.Send(ctx, msg); err != nil {
		b.Fatal(err)
	}
	reportRate(b)
}

func BenchmarkRawUnixStream64B(b *testing.B)     { benchRawStream(b, 64) }
func BenchmarkSenderUnixStream64B(b *testing.B)  { benchSenderStream(b, 64) }
func BenchmarkRawUnixStream1MiB(b *testing.B)    { benchRawStream(b, 1<<20) }
func BenchmarkSenderUnixStream1MiB(b *testing.B) { benchSenderStream(b, 1<<20) }
