package server

import (
	"errors"

	"github.com/tokamak-ai/tokamak/engine"
)

// ClassifyEngineError maps the engine's sentinel errors to error classes.
func ClassifyEngineError(err error) ErrorClass {
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		return ErrorQueueFull
	case errors.Is(err, engine.ErrContextTooLong):
		return ErrorContextTooLong
	case errors.Is(err, engine.ErrShutdown):
		return ErrorShutdown
	case errors.Is(err, engine.ErrInvalidRequest):
		return ErrorInvalid
	}
	return ErrorInternal
}

// NewEngineModel describes an engine.Engine as a served Model. tok may be
// nil (the model is then served by token ids only).
func NewEngineModel(name string, e *engine.Engine, tok Tokenizer) *Model {
	m := &Model{
		Name:          name,
		Engine:        e,
		MaxContext:    e.MaxContextTokens(),
		ClassifyError: ClassifyEngineError,
		Stats: func() EngineStats {
			st := e.Stats()
			return EngineStats{Running: st.Running, Waiting: st.Waiting, KVUsage: st.KVUsage,
				KVBlocksUsed: st.KVBlocksUsed, PrefixHitRatio: st.PrefixHitRatio}
		},
	}
	if tok != nil {
		m.Tokenizer = tok
	}
	return m
}
