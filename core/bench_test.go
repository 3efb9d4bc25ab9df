package core

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/transport"
)

// Every benchmark here runs its own baseline in the same run, so the
// figures can be read as ratios on whatever machine runs them.

type (
	ball struct{ N int }
	// start asks the pinger to play n round trips with its partner.
	start struct {
		N       int
		Partner ActorRef
		Done    PortRef[int]
	}
	Blob  struct{ Data []byte }
	Count struct{ Reply PortRef[int] }
	// BufferBlob is Blob with its payload on loan from the transport.
	BufferBlob struct{ Data Buffer }
)

func init() {
	RegisterMessage[Blob]("coretest.Blob")
	RegisterMessage[Count]("coretest.Count")
	RegisterMessage[BufferBlob]("coretest.BufferBlob")
	RegisterActor("coretest.Sink", func(struct{}) (*sink, error) { return &sink{}, nil })
}

type pinger struct {
	left    int
	partner ActorRef
	done    PortRef[int]
}

func (p *pinger) Handle(cx *Context, msg any) error {
	switch m := msg.(type) {
	case start:
		p.left, p.partner, p.done = m.N, m.Partner, m.Done
		return p.partner.Send(cx, ball{})
	case ball:
		p.left--
		if p.left == 0 {
			return p.done.Send(cx, m.N)
		}
		return p.partner.Send(cx, ball{N: m.N + 1})
	}
	return fmt.Errorf("unexpected %T", msg)
}

type ponger struct{}

func (ponger) Handle(cx *Context, msg any) error {
	m := msg.(ball)
	return ActorRef{ID: cx.Sender()}.Send(cx, m)
}

// sink counts messages; Count replies with the total so far.
type sink struct {
	n            int
	held         Checked // the last Checked, released when the next arrives
	checked, bad int
}

func (s *sink) Handle(cx *Context, msg any) error {
	switch m := msg.(type) {
	case Blob:
		s.n++
	case BufferBlob:
		m.Data.Release()
		s.n++
	case Checked:
		s.check(m)
	case SendChecked:
		for i := range m.N {
			if err := m.Reply.Send(cx, Checked{Seq: i, Data: NewBuffer(patterned(i, m.Size))}); err != nil {
				return err
			}
		}
	case CheckedStats:
		return m.Reply.Send(cx, [2]int{s.checked, s.bad})
	case Count:
		return m.Reply.Send(cx, s.n)
	}
	return nil
}

func BenchmarkPingPongLocal(b *testing.B) {
	b.Run("baseline=chan", func(b *testing.B) {
		ping, pong := make(chan int), make(chan int)
		go func() {
			for v := range ping {
				pong <- v
			}
		}()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ping <- i
			<-pong
		}
		b.StopTimer()
		close(ping)
	})
	b.Run("actors", func(b *testing.B) {
		p, err := DirectProc(transport.Local.Any(), "bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Shutdown(context.Background())
		client, _, _ := p.Instance("client")
		a, _ := p.Spawn("ping", &pinger{})
		bb, _ := p.Spawn("pong", ponger{})
		done, rx := OpenOncePort[int](client)
		b.ResetTimer()
		if err := a.Ref().Send(client, start{N: b.N, Partner: bb.Ref(), Done: done.Bind()}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := rx.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

// Peer modes for the raw baselines: a plain unix socket server speaking
// 4-byte length-prefixed frames.
const rawPeerEnv = "ACTORMESH_CORE_RAW_PEER"

func runRawPeer() bool {
	mode := os.Getenv(rawPeerEnv)
	if mode == "" {
		return false
	}
	name := "@actormesh-raw-" + fmt.Sprint(os.Getpid())
	l, err := net.Listen("unix", name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "raw peer:", err)
		os.Exit(2)
	}
	fmt.Println(name)
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	conn, err := l.Accept()
	if err != nil {
		os.Exit(2)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 2<<20)
	count := uint64(0)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			os.Exit(0)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			os.Exit(0)
		}
		switch mode {
		case "echo":
			w.Write(hdr[:])
			w.Write(buf[:n])
			w.Flush()
		case "sink":
			if n == 0 { // end of stream: report the count
				binary.BigEndian.PutUint32(hdr[:], 8)
				w.Write(hdr[:])
				w.Write(binary.BigEndian.AppendUint64(nil, count))
				w.Flush()
				count = 0
				continue
			}
			count++
		}
	}
}

func dialRawPeer(b *testing.B, mode string) net.Conn {
	cmd, addr := startRawPeer(b, mode)
	_ = cmd
	conn, err := net.Dial("unix", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

func startRawPeer(b *testing.B, mode string) (*peerProcess, string) {
	pp := spawnPeerProcess(b, rawPeerEnv+"="+mode)
	return pp, pp.line
}

func BenchmarkPingPongUnix(b *testing.B) {
	b.Run("baseline=raw", func(b *testing.B) {
		rawTrip := rawPingPong(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rawTrip()
		}
	})
	b.Run("actors", func(b *testing.B) {
		actorTrip := actorPingPong(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			actorTrip()
		}
	})
	// The raw round trip moves between modes (here 17, 36 or 46 µs) from
	// one run to the next: the two above may be measured in different
	// ones. Here blocks of each alternate, and "ratio" is the median of
	// the blocks' quotients. Each timed block follows a few untimed round
	// trips of its kind: the first after the other kind's block wake a
	// peer that went idle, and took 5-8 times a round trip (both kinds,
	// the actors' peer more).
	b.Run("interleaved", func(b *testing.B) {
		const block, settle = 200, 10
		rawTrip, actorTrip := rawPingPong(b), actorPingPong(b)
		timed := func(trip func()) time.Duration {
			for range settle {
				trip()
			}
			t0 := time.Now()
			for range block {
				trip()
			}
			return time.Since(t0) / block
		}
		var ratios, raws, actors []float64
		b.ResetTimer()
		for done := 0; done < b.N; done += block {
			raw, actor := timed(rawTrip), timed(actorTrip)
			raws = append(raws, float64(raw)/1e3)
			actors = append(actors, float64(actor)/1e3)
			ratios = append(ratios, float64(actor)/float64(raw))
		}
		b.ReportMetric(median(raws), "raw-µs")
		b.ReportMetric(median(actors), "actors-µs")
		b.ReportMetric(median(ratios), "ratio")
	})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// rawPingPong returns one 64-byte round trip of length-prefixed frames
// with a raw peer process.
func rawPingPong(b *testing.B) func() {
	conn := dialRawPeer(b, "echo")
	r := bufio.NewReader(conn)
	frame := binary.BigEndian.AppendUint32(nil, 64)
	frame = append(frame, make([]byte, 64)...)
	in := make([]byte, len(frame))
	return func() {
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, in); err != nil {
			b.Fatal(err)
		}
	}
}

// actorPingPong returns one round trip of a 64-byte Echo from a client
// instance to an actor in a peer process, replying through a port.
func actorPingPong(b *testing.B) func() {
	pr, client := benchClient(b)
	rec := ActorRef{ID: pr.ActorID("rec", 0)}
	port, rx := OpenPort[[]byte](client)
	ref := port.Bind()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	msg := Echo{Data: make([]byte, 64), Reply: ref}
	return func() {
		if err := rec.Send(client, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := rx.Recv(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchClient starts a peer process and a client instance in a proc of
// this process; both end with the benchmark.
func benchClient(b *testing.B, peerEnv ...string) (peer ProcID, client *Instance) {
	peer = startPeerB(b, "unix", peerEnv...)
	p, err := DirectProc(transport.Unix.Any(), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Shutdown(context.Background()) })
	client, _, err = p.Instance("client")
	if err != nil {
		b.Fatal(err)
	}
	return peer, client
}

func BenchmarkStreamUnix64B(b *testing.B)  { benchStream(b, 64) }
func BenchmarkStreamUnix1MiB(b *testing.B) { benchStream(b, 1<<20) }

func benchStream(b *testing.B, size int) {
	payload := make([]byte, size)
	var rawRate float64 // messages per second, for the others' "of-raw"
	b.Run("baseline=raw", func(b *testing.B) {
		conn := dialRawPeer(b, "sink")
		w := bufio.NewWriterSize(conn, 64<<10)
		r := bufio.NewReader(conn)
		hdr := binary.BigEndian.AppendUint32(nil, uint32(size))
		b.SetBytes(int64(size))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w.Write(hdr)
			w.Write(payload)
		}
		w.Write([]byte{0, 0, 0, 0})
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		reply := make([]byte, 12)
		if _, err := io.ReadFull(r, reply); err != nil {
			b.Fatal(err)
		}
		if got := binary.BigEndian.Uint64(reply[4:]); got != uint64(b.N) {
			b.Fatalf("peer counted %d of %d", got, b.N)
		}
		rawRate = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rawRate, "msgs/s")
	})
	b.Run("actors", func(b *testing.B) { benchStreamActors(b, size, rawRate, Blob{Data: payload}) })
	// The same stream with the payload in a Buffer, which the receiver
	// does not copy out of the frame.
	b.Run("actors-buffer", func(b *testing.B) { benchStreamActors(b, size, rawRate, BufferBlob{Data: NewBuffer(payload)}) })
	if size >= 1<<20 {
		// The receiver's collector run by a memory limit instead of
		// GOGC, as a proc with a memory budget would be.
		b.Run("actors-gomemlimit", func(b *testing.B) {
			benchStreamActors(b, size, rawRate, Blob{Data: payload}, "GOGC=off", "GOMEMLIMIT=256MiB")
		})
	}
}

// benchStreamActors streams msg to a sink actor in a peer process started
// with peerEnv, reporting its rate and, when rawRate is known, the share
// of it ("of-raw").
func benchStreamActors(b *testing.B, size int, rawRate float64, msg any, peerEnv ...string) {
	pr, client := benchClient(b, peerEnv...)
	// The peer's sink outlives runs: count this run's messages as the
	// difference between two Counts.
	sinkRef := ActorRef{ID: pr.ActorID("sink", 0)}
	port, rx := OpenPort[int](client)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sinkRef.Send(client, Count{Reply: port.Bind()}); err != nil {
		b.Fatal(err)
	}
	before, err := rx.Recv(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sinkRef.Send(client, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := sinkRef.Send(client, Count{Reply: port.Bind()}); err != nil {
		b.Fatal(err)
	}
	got, err := rx.Recv(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if got-before != b.N {
		b.Fatalf("sink counted %d of %d", got-before, b.N)
	}
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "msgs/s")
	if rawRate > 0 {
		b.ReportMetric(rate/rawRate, "of-raw")
	}
}

type idle struct{}

func (idle) Handle(*Context, any) error { return nil }

// BenchmarkIdleActorMemory reports the memory one idle actor costs, with
// 100,000 of them alive in one proc.
func BenchmarkIdleActorMemory(b *testing.B) {
	const n = 100_000
	for i := 0; i < b.N; i++ {
		p, err := DirectProc(transport.Local.Any(), "mem", nil)
		if err != nil {
			b.Fatal(err)
		}
		before := memInUse()
		handles := make([]*ActorHandle, n)
		for j := range handles {
			h, err := p.Spawn(fmt.Sprintf("a%d", j), idle{})
			if err != nil {
				b.Fatal(err)
			}
			handles[j] = h
		}
		// Wait until every actor has initialised and parked.
		for _, h := range handles {
			for h.Status() != StatusIdle || h.c.isRunning() {
				runtime.Gosched()
			}
		}
		after := memInUse()
		b.ReportMetric(float64(after-before)/n, "bytes/actor")
		runtime.KeepAlive(handles)
		p.Shutdown(context.Background())
	}
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// SizeHint lets the encoder size its buffer for big blobs at once.
func (b Blob) SizeHint() int { return len(b.Data) + 8 }
