package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the peer process: with TRANSPORT_TEST_PEER set,
// TestMain runs runPeer instead of the tests.
const (
	peerEnv      = "TRANSPORT_TEST_PEER"
	peerAddrEnv  = "TRANSPORT_TEST_PEER_ADDR"  // what the peer serves
	peerReplyEnv = "TRANSPORT_TEST_PEER_REPLY" // where it echoes to
)

// startPeer runs the test binary as a peer in mode and returns the address
// it prints. The peer dies with the test: Cleanup kills and reaps it, and it
// exits by itself once its stdin closes (our death).
func startPeer(tb testing.TB, mode string, env ...string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{peerEnv + "=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("peer %s: %v", mode, err)
	}
	return strings.TrimSpace(line)
}

func runPeer(mode string) {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0) // the parent is gone
	}()
	var err error
	switch mode {
	case "echo", "sink":
		err = peerServe(mode)
	case "rawecho", "rawsink":
		err = peerRaw(mode)
	default:
		err = fmt.Errorf("unknown peer mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
	select {}
}

// peerServe serves; in echo mode every message goes back to the reply
// address.
func peerServe(mode string) error {
	a, err := ParseAddr(os.Getenv(peerAddrEnv))
	if err != nil {
		return err
	}
	h := func([]byte) {}
	if mode == "echo" {
		ra, err := ParseAddr(os.Getenv(peerReplyEnv))
		if err != nil {
			return err
		}
		back, err := Dial(ra, nil)
		if err != nil {
			return err
		}
		h = back.Post
	}
	srv, err := Serve(a, h, nil)
	if err != nil {
		return err
	}
	fmt.Println(srv.Addr())
	return nil
}

// peerRaw is the baseline: plain length-prefixed frames on a unix socket.
// rawecho echoes each frame; rawsink reads frames and answers one byte on a
// zero-length frame.
func peerRaw(mode string) error {
	ln, err := net.Listen("unix", "@"+randomName(24))
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			bw := bufio.NewWriterSize(c, 64<<10)
			var hdr [4]byte
			buf := make([]byte, 0, 64<<10)
			for {
				if _, err := io.ReadFull(br, hdr[:]); err != nil {
					return
				}
				n := int(binary.BigEndian.Uint32(hdr[:]))
				if cap(buf) < n {
					buf = make([]byte, n)
				}
				buf = buf[:n]
				if _, err := io.ReadFull(br, buf); err != nil {
					return
				}
				switch {
				case mode == "rawecho":
					bw.Write(hdr[:])
					bw.Write(buf)
					if br.Buffered() == 0 {
						bw.Flush()
					}
				case n == 0:
					bw.WriteByte(1)
					bw.Flush()
				}
			}
		}()
	}
}

func TestTwoProcesses(t *testing.T) {
	for _, tc := range []struct{ name, serve, reply string }{
		{"unix", "unix:", "unix:"},
		{"tcp", "tcp:127.0.0.1:0", "tcp:127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 20000
			col := newCollector(n)
			ra, _ := ParseAddr(tc.reply)
			back := mustServe(t, ra, col.handle, nil)
			peer, err := ParseAddr(startPeer(t, "echo", peerAddrEnv+"="+tc.serve, peerReplyEnv+"="+back.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			s := mustDial(t, peer, nil)
			for i := range n - 1 {
				s.Post(seqMsg(i))
			}
			if err := s.Send(ctxWait(t), seqMsg(n-1)); err != nil {
				t.Fatal(err)
			}
			checkInOrder(t, col.wait(t), n)
		})
	}
}

var _ = time.Second
