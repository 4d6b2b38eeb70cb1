# Tokamak build targets. CPU targets need only Go; *-cuda targets need the
# CUDA toolkit (nvcc, cuBLASLt) and CMake.
GO      ?= go
BIN     ?= ./tokamak
BUILD   ?= build
CUDA_ARCHS ?= 90a

.PHONY: build test bench lint fuzz build-cuda test-cuda bench-cuda kernels clean

build:
	$(GO) build -o $(BIN) ./cmd/tokamak

test:
	$(GO) test ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./cpu/ ./engine/...

lint:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above" && exit 1)
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseHeader -fuzztime 30s ./engine/weights/

# --- CUDA ---------------------------------------------------------------
kernels:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$(CUDA_ARCHS)"
	cmake --build $(BUILD) -j

build-cuda: kernels
	CGO_ENABLED=1 $(GO) build -tags cuda -o $(BIN) ./cmd/tokamak

test-cuda: kernels
	CGO_ENABLED=1 $(GO) test -tags cuda -count=1 ./cuda/... ./engine/model/...

bench-cuda: kernels
	CGO_ENABLED=1 $(GO) test -tags cuda -run '^$$' -bench . -benchtime 20x ./cuda/...

clean:
	rm -rf $(BUILD) $(BIN)
