package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type (
	// askBack makes an asker ask From for a number and wait for it
	// inside its handler, then report it to Done.
	askBack struct {
		From ActorRef
		Done PortRef[int]
	}
	askNumber struct{ Reply PortRef[int] }
)

func init() {
	RegisterMessage[askBack]("coretest.askBack")
	RegisterMessage[askNumber]("coretest.askNumber")
}

type asker struct{ inst *Instance }

func (a *asker) Handle(cx *Context, msg any) error {
	m := msg.(askBack)
	port, rx := OpenOncePort[int](a.inst)
	if err := m.From.Send(cx, askNumber{Reply: port.Bind()}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := rx.Recv(ctx)
	if err != nil {
		return err
	}
	return m.Done.Send(cx, n)
}

type answerer struct{}

func (answerer) Handle(cx *Context, msg any) error {
	return msg.(askNumber).Reply.Send(cx, 42)
}

// A handler that blocks until a message arrives on the very connection
// that delivered its own message must not deadlock, though idle actors'
// handlers run on the connection's reader: the reader is handed over.
func TestHandlerBlockingOnItsOwnConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := twoProcs(t)
	helper, _, err := a.Instance("helper")
	require.NoError(t, err)
	ask, err := a.Spawn("asker", &asker{inst: helper})
	require.NoError(t, err)
	ans, err := b.Spawn("answerer", answerer{})
	require.NoError(t, err)
	client, _, err := b.Instance("client")
	require.NoError(t, err)
	done, rx := OpenPort[int](client)

	// The ask and the answer travel on b's one connection to a.
	for range 3 {
		require.NoError(t, ask.Ref().Send(client, askBack{From: ans.Ref(), Done: done.Bind()}))
	}
	for range 3 {
		n, err := rx.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, 42, n)
	}
}
