//go:build cuda

package cuda

import (
	"testing"
	"time"

	"github.com/tokamak-ai/tokamak/engine/backend"
)

// TestTimeQueued checks the device wait that timeQueuedMS queues work
// behind: a wait of d nanoseconds holds its stream at least d, and work
// whose host side takes 20 µs before it reaches the stream times at least
// that with timeMS (the start event runs at once) but less queued (the
// start event runs after the wait, by when the work is on the stream).
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
	buf, err := gpu.alloc(backend.F32, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Free(buf)
	const hostWait = 20 * time.Microsecond
	fn := func() error {
		for start := time.Now(); time.Since(start) < hostWait; {
		}
		return gpu.fillRandom(buf, 1, 1)
	}
	launched, err := gpu.timeMS(fn, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := gpu.timeQueuedMS(fn, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if launched*1e3 < float64(hostWait.Microseconds()) {
		t.Errorf("timed with its launch, a 4 KB fill after %v on the host took %.1f us", hostWait, launched*1e3)
	}
	if queued*1e3 >= float64(hostWait.Microseconds()) {
		t.Errorf("queued behind the wait, a 4 KB fill after %v on the host took %.1f us: the host's time was measured",
			hostWait, queued*1e3)
	}
	if _, err := gpu.timeMS(func() error { return gpu.spinWait(2_000_000_000) }, 0, 1); err == nil {
		t.Error("a wait of 2 s was accepted")
	}
}
