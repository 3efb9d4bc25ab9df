// Package testactor provides TestActor, an actor for tests and demos that
// answers with its identity, echoes, sleeps, and fails on request (error,
// panic, process exit, signal). The bootstrap binary links it in, so any mesh can
// spawn it by name.
package testactor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/actormesh/actormesh/core"
	"github.com/actormesh/actormesh/mesh"
)

// TypeName is TestActor's registered type.
const TypeName = "testactor.TestActor"

// Messages TestActor handles.
type (
	// GetActorID asks the actor for its id.
	GetActorID struct{ Reply core.PortRef[core.ActorID] }
	// Echo replies with Data.
	Echo struct {
		Data  []byte
		Reply core.PortRef[[]byte]
	}
	// Sleep holds the actor for D, then replies.
	Sleep struct {
		D     time.Duration
		Reply core.PortRef[bool]
	}
	// Fail makes the handler return an error with Msg.
	Fail struct{ Msg string }
	// Panic makes the handler panic with Msg.
	Panic struct{ Msg string }
	// Exit ends the actor's whole process with Code, as a crash would,
	// after writing Stderr (if any) to the process's stderr: the last words
	// a supervisor should report.
	Exit struct {
		Code   int
		Stderr string `msgpack:",omitempty"`
	}
	// IgnoreSIGTERM makes the actor's process ignore SIGTERM, as a
	// misbehaving program would, so that stopping it has to go as far as
	// SIGKILL. It replies once the signal is ignored.
	IgnoreSIGTERM struct{ Reply core.PortRef[bool] }
	// Raise is for casts: the actor at Rank of the cast's view sends Signal
	// to its own process (a SIGKILL "from outside", at a known point of a
	// gather); every other actor replies with its id.
	Raise struct {
		Rank   int
		Signal int
		Reply  core.PortRef[core.ActorID]
	}
	// GetCastInfo asks where a cast landed.
	GetCastInfo struct{ Reply core.PortRef[CastInfo] }
	// CastInfo answers GetCastInfo.
	CastInfo struct {
		Rank   int
		Point  string
		Self   core.ActorID
		Sender core.ActorID
	}
	// Record appends Seq to the actor's log.
	Record struct{ Seq int }
	// GetRecords replies with the log.
	GetRecords struct{ Reply core.PortRef[Records] }
	// Records answers GetRecords.
	Records struct {
		Actor core.ActorID
		Seqs  []int
	}
	// StartChild starts Args as a child process of the actor's proc, in
	// its process group and writing to its stdout and stderr, and replies
	// with the child's pid. The actor does not wait for it to end.
	StartChild struct {
		Args  []string
		Reply core.PortRef[int]
	}
	// GetGOMAXPROCS replies with the proc's runtime.GOMAXPROCS.
	GetGOMAXPROCS struct{ Reply core.PortRef[int] }
	// Add replies with N plus the actor's rank, for reductions.
	Add struct {
		N     int
		Reply core.PortRef[int]
	}
)

func init() {
	core.RegisterMessage[GetActorID]("testactor.GetActorID")
	core.RegisterMessage[Echo]("testactor.Echo")
	core.RegisterMessage[Sleep]("testactor.Sleep")
	core.RegisterMessage[Fail]("testactor.Fail")
	core.RegisterMessage[Panic]("testactor.Panic")
	core.RegisterMessage[Exit]("testactor.Exit")
	core.RegisterMessage[IgnoreSIGTERM]("testactor.IgnoreSIGTERM")
	core.RegisterMessage[Raise]("testactor.Raise")
	core.RegisterMessage[GetCastInfo]("testactor.GetCastInfo")
	core.RegisterMessage[CastInfo]("testactor.CastInfo")
	core.RegisterMessage[Record]("testactor.Record")
	core.RegisterMessage[GetRecords]("testactor.GetRecords")
	core.RegisterMessage[Records]("testactor.Records")
	core.RegisterMessage[Add]("testactor.Add")
	core.RegisterMessage[GetGOMAXPROCS]("testactor.GetGOMAXPROCS")
	core.RegisterMessage[StartChild]("testactor.StartChild")
	core.RegisterActor(TypeName, func(struct{}) (*TestActor, error) { return &TestActor{}, nil })
}

// TestActor is the test and demo actor.
type TestActor struct {
	seqs []int
}

// Handle dispatches TestActor's messages.
func (a *TestActor) Handle(cx *core.Context, msg any) error {
	switch m := msg.(type) {
	case GetActorID:
		return m.Reply.Send(cx, cx.ID())
	case Echo:
		return m.Reply.Send(cx, m.Data)
	case Sleep:
		time.Sleep(m.D) // the point of the message: occupy the actor
		return m.Reply.Send(cx, true)
	case GetGOMAXPROCS:
		return m.Reply.Send(cx, runtime.GOMAXPROCS(0))
	case Fail:
		return errors.New(m.Msg)
	case Panic:
		panic(m.Msg)
	case Exit:
		if m.Stderr != "" {
			os.Stderr.WriteString(m.Stderr) // unbuffered: written before the exit
		}
		os.Exit(m.Code) // simulates a crashing process; never do this in library code
	case StartChild:
		if len(m.Args) == 0 {
			return errors.New("testactor: StartChild with no command")
		}
		cmd := exec.Command(m.Args[0], m.Args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait() // reaps it, should it end before the proc
		return m.Reply.Send(cx, cmd.Process.Pid)
	case IgnoreSIGTERM:
		signal.Ignore(syscall.SIGTERM)
		return m.Reply.Send(cx, true)
	case Raise:
		info, ok := mesh.CastInfoOf(cx)
		if ok && info.Rank == m.Rank {
			return syscall.Kill(os.Getpid(), syscall.Signal(m.Signal))
		}
		return m.Reply.Send(cx, cx.ID())
	case GetCastInfo:
		info, ok := mesh.CastInfoOf(cx)
		if !ok {
			return m.Reply.Send(cx, CastInfo{Rank: -1, Self: cx.ID(), Sender: cx.Sender()})
		}
		return m.Reply.Send(cx, CastInfo{Rank: info.Rank, Point: info.Point.String(), Self: cx.ID(), Sender: info.Sender})
	case Record:
		a.seqs = append(a.seqs, m.Seq)
	case GetRecords:
		return m.Reply.Send(cx, Records{Actor: cx.ID(), Seqs: append([]int(nil), a.seqs...)})
	case mesh.MethodCall:
		return m.Reply.Send(cx, a.call(cx, m))
	case Add:
		rank := 0
		if info, ok := mesh.CastInfoOf(cx); ok {
			rank = info.Rank
		}
		return m.Reply.Send(cx, m.N+rank)
	default:
		return fmt.Errorf("testactor: unexpected message %T", msg)
	}
	return nil
}

// call answers method calls from foreign hosts: "GetActorID" replies with
// the actor's id, "Echo" with the payload.
func (a *TestActor) call(cx *core.Context, c mesh.MethodCall) mesh.MethodReply {
	switch c.Method {
	case "GetActorID":
		b, err := msgpack.Marshal(cx.ID())
		if err != nil {
			return mesh.MethodReply{Err: err.Error()}
		}
		return mesh.MethodReply{Payload: b}
	case "Echo":
		return mesh.MethodReply{Payload: c.Payload}
	}
	return mesh.MethodReply{Err: fmt.Sprintf("testactor: unknown method %q", c.Method)}
}
