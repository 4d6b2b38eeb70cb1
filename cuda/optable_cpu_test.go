package cuda

import (
	"math/rand"
	"testing"

	"github.com/tokamak-ai/tokamak/cpu"
)

// TestOpTableRunsOnCPU keeps the op table honest where there is no GPU:
// every case builds and runs on the CPU oracle and writes finite outputs.
func TestOpTableRunsOnCPU(t *testing.T) {
	be := cpu.New()
	for _, c := range opTable() {
		if c.variant != 0 {
			continue // a CUDA kernel variant's twin: the same CPU run again
		}
		t.Run(c.name, func(t *testing.T) {
			p, err := c.prep(be, rand.New(rand.NewSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.run(); err != nil {
				t.Fatal(err)
			}
			for i, o := range append(p.outs, p.inout...) {
				v, err := be.Download(o)
				if err != nil {
					t.Fatal(err)
				}
				for j, f := range v {
					if f != f || f > 1e30 || f < -1e30 {
						t.Fatalf("output %d element %d = %v", i, j, f)
					}
				}
			}
		})
	}
}
