package extension

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Lambda's errorType strings, as the Extensions and Runtime APIs send them.
const (
	ErrInvalidExtensionName       = "Extension.InvalidExtensionName"
	ErrInvalidRequestFormat       = "InvalidRequestFormat"
	ErrInvalidEventType           = "Extension.InvalidEventType"
	ErrRegistrationClosed         = "Extension.RegistrationClosed"
	ErrInvalidExtensionState      = "Extension.InvalidExtensionState"
	ErrTooManyExtensions          = "Extension.TooManyExtensions"
	ErrMissingExtensionIdentifier = "Extension.MissingExtensionIdentifier"
	ErrInvalidExtensionIdentifier = "Extension.InvalidExtensionIdentifier"
	ErrUnknownExtensionIdentifier = "Extension.UnknownExtensionIdentifier"
	ErrMissingHeader              = "Extension.MissingHeader"

	ErrInvalidRequestID         = "InvalidRequestID"
	ErrInvalidStateTransition   = "InvalidStateTransition"
	ErrRequestEntityTooLarge    = "RequestEntityTooLarge"
	ErrInternalServerError      = "InternalServerError"
	ErrNotFound                 = "NotFound"
	ErrMethodNotAllowed         = "MethodNotAllowed"
	ErrExtensionCrash           = "Extension.Crash"
	ErrRuntimeExit              = "Runtime.ExitError"
	ErrRuntimeUnknown           = "Runtime.Unknown"
	ErrFunctionResponseTooLarge = "Function.ResponseSizeTooLarge"
)

// MaxExtensions is Lambda's limit on registered extensions (external and internal).
const MaxExtensions = 10

// MaxResponseBytes is the largest invocation response or error the Runtime
// API accepts (6 MiB); a larger body gets 413 RequestEntityTooLarge.
const MaxResponseBytes = 6 << 20

// maxRequestBytes caps every other request body: register, subscribe and
// error reports are small, and the platform must not buffer unbounded input.
const maxRequestBytes = 1 << 20

// APIError is an API failure with Lambda's status, errorType and message.
type APIError struct {
	Status  int
	Type    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

func apiErr(status int, typ, format string, args ...any) *APIError {
	return &APIError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// errorBody is Lambda's error response body.
type errorBody struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errorMessage":"Internal Server Error","errorType":"InternalServerError"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeAPIError(w http.ResponseWriter, e *APIError) {
	writeJSON(w, e.Status, errorBody{ErrorMessage: e.Message, ErrorType: e.Type})
}
