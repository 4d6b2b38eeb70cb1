package server

import (
	"log/slog"
	"net/http/httptest"
	"strings"
)

func httptestRecorder(s *Server, method, path, body string) int {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code
}

// quiet is a discarding logger for tests.
var quiet = slog.New(slog.DiscardHandler)
