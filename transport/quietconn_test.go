package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/actormesh/actormesh/internal/testwait"
)

// quietPair returns a quietConn dialled to a plain unix connection.
func quietPair(t *testing.T) (*quietConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", "@"+fmt.Sprintf("amsh-quiet-%d-%d", os.Getpid(), time.Now().UnixNano()))
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	require.NoError(t, err)
	qc, err := quiet(c)
	require.NoError(t, err)
	peer := testwait.Recv(t, accepted, testWait, "the accepted connection")
	require.NotNil(t, peer)
	t.Cleanup(func() { qc.Close(); peer.Close() })
	return qc.(*quietConn), peer
}

func TestQuietConnReadWrite(t *testing.T) {
	q, peer := quietPair(t)
	msg := bytes.Repeat([]byte("quiet"), 1000)
	go func() { q.Write(msg) }()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(peer, got)
	require.NoError(t, err)
	assert.Equal(t, msg, got)

	go func() { peer.Write([]byte("ack")) }()
	buf := make([]byte, 16)
	n, err := q.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, "ack", string(buf[:n]))

	require.NoError(t, q.CloseWrite())
	n, err = peer.Read(buf)
	assert.Equal(t, 0, n)
	assert.ErrorIs(t, err, io.EOF)

	peer.Close()
	_, err = q.Read(buf)
	assert.ErrorIs(t, err, io.EOF)
}

// A write larger than the socket buffers waits for room, and gets it as
// the peer reads.
func TestQuietConnWriteWaitsForRoom(t *testing.T) {
	q, peer := quietPair(t)
	msg := make([]byte, 8<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		_, err := q.Write(msg)
		done <- err
	}()
	got := make([]byte, len(msg))
	_, err := io.ReadFull(peer, got)
	require.NoError(t, err)
	require.NoError(t, <-done)
	assert.True(t, bytes.Equal(msg, got))
	assert.ElementsMatch(t, []uint32{0x80002019, 0x18}, epollWatches(t, q.fd),
		"output still watched after the write")
}

func TestQuietConnDeadlines(t *testing.T) {
	q, _ := quietPair(t)
	require.NoError(t, q.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err := q.Read(make([]byte, 8))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "read: %v", err)

	// The peer never reads: the write fills the buffers, then times out.
	require.NoError(t, q.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := q.Write(make([]byte, 64<<20))
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "write: %v", err)
	assert.Greater(t, n, 0)
}

func TestQuietConnCloseWakesWaiters(t *testing.T) {
	q, _ := quietPair(t)
	readErr, writeErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := q.Read(make([]byte, 8))
		readErr <- err
	}()
	go func() {
		_, err := q.Write(make([]byte, 64<<20)) // the peer never reads
		writeErr <- err
	}()
	// Close must wake both wherever they are: waiting, or not there yet.
	require.NoError(t, q.Close())
	for _, ch := range []chan error{readErr, writeErr} {
		select {
		case err := <-ch:
			assert.ErrorIs(t, err, net.ErrClosed)
		case <-time.After(testWait):
			t.Fatal("Close left an operation waiting")
		}
	}
	assert.ErrorIs(t, q.Close(), net.ErrClosed)
	_, err := q.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
}

// The point of quietConn: while no write waits, no epoll instance watches
// the socket for output, so a peer's reads wake nobody here.
func TestQuietConnNotWatchedForOutput(t *testing.T) {
	q, peer := quietPair(t)
	_, err := q.Write([]byte("x"))
	require.NoError(t, err)
	_, err = peer.Read(make([]byte, 1))
	require.NoError(t, err)

	watches := epollWatches(t, q.fd)
	require.Len(t, watches, 2, "the socket should be in exactly its two own epoll instances")
	for _, ev := range watches {
		assert.Zero(t, ev&0x4, "socket watched for EPOLLOUT (events %#x)", ev)
	}
	// The kernel adds EPOLLERR|EPOLLHUP to every watch.
	assert.ElementsMatch(t, []uint32{0x80002019, 0x18}, watches,
		"want an edge-triggered input watch and a disabled one")
}

// epollWatches lists the event masks with which this process's epoll
// instances watch the file open as fd, from /proc/self/fdinfo.
func epollWatches(t *testing.T, fd int) []uint32 {
	t.Helper()
	var target os.FileInfo
	target, err := os.Stat("/proc/self/fd/" + strconv.Itoa(fd))
	require.NoError(t, err)
	fds, err := filepath.Glob("/proc/self/fd/*")
	require.NoError(t, err)
	var masks []uint32
	for _, p := range fds {
		if link, err := os.Readlink(p); err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + filepath.Base(p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || f[0] != "tfd:" || f[2] != "events:" {
				continue
			}
			tfd, _ := strconv.Atoi(f[1])
			st, err := os.Stat("/proc/self/fd/" + strconv.Itoa(tfd))
			if err != nil || !os.SameFile(st, target) {
				continue
			}
			ev, err := strconv.ParseUint(f[3], 16, 32)
			require.NoError(t, err)
			masks = append(masks, uint32(ev))
		}
	}
	if len(masks) == 0 {
		t.Fatal(errors.New("the socket is in no epoll instance"))
	}
	return masks
}

// A closed quietConn leaves no descriptor behind: its socket and its two
// epoll instances are all closed.
func TestQuietConnClosesItsDescriptors(t *testing.T) {
	openFDs := func() int {
		fds, err := os.ReadDir("/proc/self/fd")
		require.NoError(t, err)
		return len(fds)
	}
	q, peer := quietPair(t) // the runtime's own descriptors exist by now
	q.Close()
	peer.Close()
	before := openFDs()
	for range 50 {
		q, peer := quietPair(t)
		_, err := q.Write([]byte("x"))
		require.NoError(t, err)
		require.NoError(t, q.Close())
		peer.Close()
	}
	assert.Equal(t, before, openFDs())
}

// The send buffer grows once a large message goes through, and not for
// small ones.
func TestQuietConnGrowsSendBufferForLargeWrites(t *testing.T) {
	q, peer := quietPair(t)
	sndbuf := func() int {
		v, err := unix.GetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
		require.NoError(t, err)
		return v
	}
	initial := sndbuf()
	go io.Copy(io.Discard, peer)
	for range 100 {
		_, err := q.Write(make([]byte, 1024))
		require.NoError(t, err)
	}
	assert.Equal(t, initial, sndbuf(), "grown by small writes")
	_, err := q.Write(make([]byte, largeWrite))
	require.NoError(t, err)
	assert.Greater(t, sndbuf(), initial, "not grown by a large write")
}
