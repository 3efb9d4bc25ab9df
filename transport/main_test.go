package transport

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(peerEnv); mode != "" {
		runPeer(mode)
		return
	}
	goleak.VerifyTestMain(m)
}
