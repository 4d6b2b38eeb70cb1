// Package server is Tokamak's OpenAI-compatible HTTP API: /v1/completions
// and /v1/chat/completions (with SSE streaming), /v1/models, /health and
// /metrics (Prometheus).
//
// The server talks to the engine and the tokenizer through the small
// interfaces Engine and Tokenizer, so that it can be tested with fakes and
// so that a model without a tokenizer is served by token ids.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokamak-ai/tokamak/engine"
)

// Engine is what the server needs from the engine.
type Engine interface {
	// Submit starts a request. The channel yields the request's events and
	// is closed after the last Done event (one per completion); cancelling
	// ctx cancels the request and frees its resources. Errors: ErrQueueFull
	// (429), ErrContextTooLong (400), ErrShutdown (503) as classified by
	// the Model's ClassifyError.
	Submit(ctx context.Context, req engine.Request) (<-chan engine.Event, error)
}

// Tokenizer is what the server needs from a model's tokenizer.
type Tokenizer interface {
	// Encode turns text into token ids, adding BOS and the like when addSpecial.
	Encode(text string, addSpecial bool) ([]int32, error)
	// Decode turns ids into text (used for logprob token strings).
	Decode(ids []int32) (string, error)
	// HasChatTemplate reports whether ApplyChatTemplate can be used.
	HasChatTemplate() bool
	// ApplyChatTemplate renders messages into the model's prompt text.
	ApplyChatTemplate(messages []ChatMessage, addGenerationPrompt bool) (string, error)
}

// EngineStats is a snapshot of the engine's load, for the gauges.
type EngineStats struct {
	// Running and Waiting count sequences.
	Running, Waiting int
	// KVUsage is the fraction of KV blocks in use (0..1).
	KVUsage float64
	// KVBlocksUsed is the number of KV blocks held by sequences.
	KVBlocksUsed int
	// PrefixHitRatio is cached prompt tokens / prompt tokens so far (0..1).
	PrefixHitRatio float64
}

// ErrorClass is how the server reports an engine Submit error.
type ErrorClass int

// Error classes of Submit errors.
const (
	ErrorInternal ErrorClass = iota
	ErrorQueueFull
	ErrorContextTooLong
	ErrorShutdown
	// ErrorInvalid is a request the engine refused as malformed (400).
	ErrorInvalid
)

// Model is one served model.
type Model struct {
	// Name is the model id clients send and /v1/models lists.
	Name string
	// Engine runs the requests.
	Engine Engine
	// Tokenizer is nil for a model served by token ids only.
	Tokenizer Tokenizer
	// MaxContext is the context length in tokens (prompt + completion).
	MaxContext int
	// Stats, if set, is sampled on each /metrics scrape.
	Stats func() EngineStats
	// ClassifyError maps a Submit error to a class; nil treats every error
	// as internal.
	ClassifyError func(error) ErrorClass
}

// Config holds the server's limits and collaborators.
type Config struct {
	// MaxBodyBytes caps a request body (413 above it); default 4 MiB.
	MaxBodyBytes int64
	// MaxInFlight caps concurrently handled generation requests (429 above
	// it), a backstop to the engine's own queue bound; 0: no cap.
	MaxInFlight int
	// RetryAfterSeconds is sent with 429s; default 1.
	RetryAfterSeconds int
	// StreamWriteTimeout bounds each SSE write: a client that stops reading
	// for longer is treated as gone and its request is cancelled; default 60 s.
	StreamWriteTimeout time.Duration
	// BodyReadTimeout bounds reading a request body, so a client trickling
	// it cannot hold an in-flight slot; default 60 s.
	BodyReadTimeout time.Duration
	// DefaultMaxTokens is max_tokens for completions that give none; default 16.
	DefaultMaxTokens int
	// Devices, if set, supplies GPU memory and utilization for /metrics.
	Devices DeviceMonitor
	// Logger logs request failures; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server is the HTTP API. It is ready (GET /health 200) once SetModel has
// been called and until Serve begins draining.
type Server struct {
	cfg      Config
	model    atomic.Pointer[Model]
	draining atomic.Bool
	inFlight chan struct{}
	metrics  *metrics
	registry *prometheus.Registry
	mux      *http.ServeMux
	// hardStop is cancelled when the drain grace period ends: every
	// request context derives from it.
	hardStop   context.Context
	cancelHard context.CancelFunc
	active     atomic.Int64
	idMu       sync.Mutex
	nextID     uint64
}

// New returns a server with no model yet (health 503).
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.RetryAfterSeconds <= 0 {
		cfg.RetryAfterSeconds = 1
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = 16
	}
	if cfg.StreamWriteTimeout <= 0 {
		cfg.StreamWriteTimeout = time.Minute
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, registry: prometheus.NewRegistry(), mux: http.NewServeMux()}
	if cfg.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, cfg.MaxInFlight)
	}
	s.hardStop, s.cancelHard = context.WithCancel(context.Background())
	s.metrics = newMetrics(s.registry, s.statsSnapshot, cfg.Devices)
	s.mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return s
}

// SetModel installs the model to serve and marks the server ready.
func (s *Server) SetModel(m *Model) {
	for _, h := range []*prometheus.HistogramVec{s.metrics.ttft, s.metrics.itl, s.metrics.e2e, s.metrics.queue} {
		h.WithLabelValues(m.Name) // export the series from the start
	}
	s.model.Store(m)
}

// Ready reports whether the server accepts generation requests.
func (s *Server) Ready() bool { return s.model.Load() != nil && !s.draining.Load() }

// Registry returns the Prometheus registry behind /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves HTTP on ln until ctx is done (e.g. on SIGTERM), then
// drains: the listener stays open but /health and new generation requests
// get 503, in-flight requests may finish for up to grace, after which they
// are cancelled and the listener closes. It returns nil after the drain,
// or the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	// No ReadTimeout: once it expires, net/http's background read cancels
	// the request context, which would cut off long streams. Body reads get
	// a deadline of their own (BodyReadTimeout) instead.
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.cfg.Logger.Info("draining", "in_flight", s.active.Load(), "grace", grace)
	deadline := time.Now().Add(grace)
	for s.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.active.Load(); n > 0 {
		s.cfg.Logger.Warn("drain grace expired; cancelling in-flight requests", "in_flight", n)
		s.cancelHard()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serr)
	}
	s.cfg.Logger.Info("drained")
	return nil
}

// InFlight returns the number of generation requests being handled.
func (s *Server) InFlight() int64 { return s.active.Load() }

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeError(w, errUnavailable("server is shutting down"))
	case s.model.Load() == nil:
		writeError(w, errUnavailable("model is loading"))
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := ModelList{Object: "list", Data: []ModelCard{}}
	if m := s.model.Load(); m != nil {
		list.Data = append(list.Data, ModelCard{ID: m.Name, Object: "model", Created: s.cfg.Now().Unix(),
			OwnedBy: "tokamak", MaxModelLen: m.MaxContext})
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) statsSnapshot() (EngineStats, bool) {
	m := s.model.Load()
	if m == nil || m.Stats == nil {
		return EngineStats{}, false
	}
	return m.Stats(), true
}

// admit checks readiness and the in-flight cap; release must be called
// when the request is done.
func (s *Server) admit() (*Model, func(), *APIError) {
	if s.draining.Load() {
		return nil, nil, errUnavailable("server is shutting down")
	}
	m := s.model.Load()
	if m == nil {
		return nil, nil, errUnavailable("model is loading")
	}
	if s.inFlight == nil {
		return m, func() {}, nil
	}
	select {
	case s.inFlight <- struct{}{}:
		return m, func() { <-s.inFlight }, nil
	default:
		s.metrics.rejected.Inc()
		return nil, nil, errQueueFull(s.cfg.RetryAfterSeconds)
	}
}

func (s *Server) newID(prefix string) string {
	s.idMu.Lock()
	s.nextID++
	n := s.nextID
	s.idMu.Unlock()
	return fmt.Sprintf("%s-%x-%d", prefix, s.cfg.Now().UnixNano(), n)
}
