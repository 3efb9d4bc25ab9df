package mesh

import (
	"testing"

	"go.uber.org/goleak"
)

// Procs started in-process (cast_inproc_test.go and others) must leave no
// goroutine behind once shut down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
