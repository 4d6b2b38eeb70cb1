//go:build cuda

package cuda

import (
	"testing"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// TestTimeQueued checks the device wait that timeQueuedMS queues work
// behind: a wait of d nanoseconds holds its stream at least d, and work
// timed behind it is timed without it (the start event follows the wait).
func TestTimeQueued(t *testing.T) {
	gpu := openTest(t)
	for _, ns := range []uint64{20_000, 200_000} {
		ms, err := gpu.timeMS(func() error { return gpu.spinWait(ns) }, 1, 5)
		if err != nil {
			t.Fatal(err)
		}
		if ms*1e6 < float64(ns) {
			t.Errorf("a wait of %d ns held the stream %.0f ns", ns, ms*1e6)
		}
	}
	// a small copy queued behind the wait: far less than the wait itself
	buf, err := gpu.alloc(backend.F32, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Free(buf)
	ms, err := gpu.timeQueuedMS(func() error { return gpu.fillRandom(buf, 1, 1) }, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ms*1e6 >= queueNS {
		t.Errorf("a 4 KB fill queued behind the wait timed %.0f ns, at least the wait's %d", ms*1e6, queueNS)
	}
	if _, err := gpu.timeMS(func() error { return gpu.spinWait(2_000_000_000) }, 0, 1); err == nil {
		t.Error("a wait of 2 s was accepted")
	}
}
