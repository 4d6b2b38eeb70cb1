package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine"
	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/tokenizer"
	"github.com/tokamak-ai/tokamak/server"
	"github.com/tokamak-ai/tokamak/server/gpumon"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve a model over the OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /metrics)",
		Flags: append([]cli.Flag{
			modelFlag, deviceFlag, gpuMemFlag,
			&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on"},
			&cli.IntFlag{Name: "port", Value: 8000, Usage: "TCP port (0: any free port, printed on stderr)"},
			&cli.StringFlag{Name: "served-model-name", Usage: "model id clients send (default: the model folder's name)"},
			&cli.IntFlag{Name: "max-queue", Value: 1024, Usage: "most sequences waiting; beyond it requests get 429"},
			&cli.IntFlag{Name: "max-model-len", Usage: "context length (default: the model's)"},
			&cli.Int64Flag{Name: "max-body-bytes", Value: 4 << 20, Usage: "largest request body (413 above)"},
			&cli.DurationFlag{Name: "shutdown-grace", Value: 30 * time.Second, Usage: "on SIGTERM, how long in-flight requests may finish"},
			&cli.BoolFlag{Name: "no-prefix-cache", Usage: "disable prefix caching"},
		}, engineFlags(256, 2048, policyMaxUtilization)...),
		Action: runServe,
	}
}

// streamDecoders adapts the tokenizer to engine.Detokenizer.
type streamDecoders struct{ t *tokenizer.Tokenizer }

func (d streamDecoders) NewStreamDecoder() engine.StreamDecoder { return d.t.NewStreamDecoder() }

func runServe(c *cli.Context) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Listen first, so that /health answers 503 while the model loads.
	addr := net.JoinHostPort(c.String("host"), strconv.Itoa(c.Int("port")))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	cfg := server.Config{MaxBodyBytes: c.Int64("max-body-bytes"), Logger: logger}
	if mon, err := gpumon.New(); err == nil {
		defer mon.Close()
		cfg.Devices = mon
	}
	srv := server.New(cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, c.Duration("shutdown-grace")) }()
	logger.Info("listening", "addr", ln.Addr().String())

	e, name, cleanup, err := loadServedModel(c, logger, srv)
	if err != nil {
		stop()
		<-served
		return err
	}
	defer cleanup()
	err = <-served
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := e.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
		logger.Warn("engine shutdown", "err", serr)
	}
	logger.Info("stopped", "model", name)
	return err
}

// loadServedModel loads the model, tokenizer and engine, warms the engine
// up with one request, and installs the model on srv (health turns 200).
func loadServedModel(c *cli.Context, logger *slog.Logger, srv *server.Server) (*engine.Engine, string, func(), error) {
	dir, err := resolveModel(c)
	if err != nil {
		return nil, "", nil, err
	}
	tok, err := loadTokenizer(dir)
	if err != nil {
		return nil, "", nil, err
	}
	b, err := openBackend(c)
	if err != nil {
		return nil, "", nil, err
	}
	start := time.Now()
	m, err := model.Load(dir, b)
	if err != nil {
		_ = b.Close()
		return nil, "", nil, err
	}
	ecfg, err := engineConfig(c, m, dir)
	if err != nil {
		m.Close()
		_ = b.Close()
		return nil, "", nil, err
	}
	ecfg.MaxQueue = c.Int("max-queue")
	ecfg.DisablePrefixCache = c.Bool("no-prefix-cache")
	if n := c.Int("max-model-len"); n > 0 {
		ecfg.MaxContextTokens = min(n, ecfg.MaxContextTokens)
	}
	if tok != nil {
		ecfg.Detokenizer = streamDecoders{tok}
		ecfg.EOSTokenIDs = append(ecfg.EOSTokenIDs, tok.EOS()...)
	}
	e, err := engine.New(m, ecfg)
	if err != nil {
		m.Close()
		_ = b.Close()
		return nil, "", nil, err
	}
	cleanup := func() {
		_ = e.Close()
		m.Close()
		_ = b.Close()
	}
	if err := warmUp(e); err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("warm-up: %w", err)
	}
	name := c.String("served-model-name")
	if name == "" {
		name = filepath.Base(filepath.Clean(dir))
	}
	srv.SetModel(server.NewEngineModel(name, e, server.WrapTokenizer(tok)))
	logger.Info("ready", "model", name, "dir", dir, "backend", b.Name(), "context", e.MaxContextTokens(),
		"tokenizer", tok != nil, "load_seconds", time.Since(start).Seconds())
	return e, name, cleanup, nil
}

// warmUp runs one short request through the engine so that the first
// client does not pay for lazy initialisation.
func warmUp(e *engine.Engine) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ch, err := e.Submit(ctx, engine.Request{PromptIDs: []int32{0, 1, 2, 3}, MaxTokens: 2, IgnoreEOS: true})
	if err != nil {
		return err
	}
	for ev := range ch {
		if ev.Done && ev.Err != nil {
			return ev.Err
		}
	}
	return ctx.Err()
}
