package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// APIError is an error with the HTTP status and the OpenAI error body it
// is reported as.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Type is OpenAI's error type ("invalid_request_error", ...).
	Type string
	// Message is the human-readable explanation.
	Message string
	// Param names the offending request field, if any.
	Param string
	// Code is a short machine-readable code, if any.
	Code string
	// RetryAfterSeconds, when > 0, is sent as the Retry-After header.
	RetryAfterSeconds int
}

// Error returns the message.
func (e *APIError) Error() string { return e.Message }

// ErrorBody is the JSON shape of an error response: {"error": {...}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *APIError) body() ErrorBody {
	d := ErrorDetail{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		p := e.Param
		d.Param = &p
	}
	if e.Code != "" {
		c := e.Code
		d.Code = &c
	}
	return ErrorBody{Error: d}
}

// writeError writes err as an OpenAI error response.
func writeError(w http.ResponseWriter, e *APIError) {
	if e.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e.body())
}

func errInvalid(param, msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param,
		Message: fmt.Sprintf("%s: %s", param, msg)}
}

func errBadType(param, want string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param,
		Code: "invalid_type", Message: fmt.Sprintf("%s: must be %s", param, want)}
}

func errRange(param string, v any, lo, hi string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param,
		Code: "out_of_range", Message: fmt.Sprintf("%s: %v is out of range [%s, %s]", param, v, lo, hi)}
}

func errContext(promptTokens, maxTokens, maxContext int) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "max_tokens",
		Code: "context_length_exceeded",
		Message: fmt.Sprintf("this model's maximum context length is %d tokens; the request has %d prompt tokens and asks for %d completion tokens (%d in all)",
			maxContext, promptTokens, maxTokens, promptTokens+maxTokens)}
}

func errQueueFull(retryAfter int) *APIError {
	return &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
		Message: "the server is at capacity; retry later", RetryAfterSeconds: retryAfter}
}

func errUnavailable(msg string) *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Type: "service_unavailable", Code: "unavailable", Message: msg}
}

func errInternal(msg string) *APIError {
	return &APIError{Status: http.StatusInternalServerError, Type: "server_error", Message: msg}
}

func quote(s string) string { return strconv.Quote(s) }
