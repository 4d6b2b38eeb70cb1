package server

import (
	"net/http/httptest"
	"strings"
)

func httptestRecorder(s *Server, method, path, body string) int {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code
}
