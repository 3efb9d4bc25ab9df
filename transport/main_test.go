package transport

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(peerEnv); mode != "" {
		runPeer(mode)
		return
	}
	goleak.VerifyTestMain(m)
}

func init() {
	if os.Getenv("TRANSPORT_DEBUG") != "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
}

func init() {
	if os.Getenv("TRANSPORT_LONGWAIT") != "" {
		testWait = 10 * time.Minute
	}
}
