package extension

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/initprof/initprof/extension/telemetry"
)

// ExtState is an extension's place in Lambda's state machine.
type ExtState int

// Extension states. Launched is external-only: the process exists but has
// not registered yet.
const (
	ExtLaunched ExtState = iota
	ExtRegistered
	ExtReady   // waiting in /next
	ExtRunning // handed an event, working on it
	ExtInitError
	ExtExitError
	ExtExited
)

func (s ExtState) String() string {
	switch s {
	case ExtLaunched:
		return "Launched"
	case ExtRegistered:
		return "Registered"
	case ExtReady:
		return "Ready"
	case ExtRunning:
		return "Running"
	case ExtInitError:
		return "InitError"
	case ExtExitError:
		return "ExitError"
	case ExtExited:
		return "Exited"
	}
	return "Unknown"
}

// Lambda's event names.
const (
	EventInvoke   = "INVOKE"
	EventShutdown = "SHUTDOWN"
)

// Tracing is the X-Ray header value carried by INVOKE and platform.start.
type Tracing struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// ExtEvent is the body /extension/event/next returns: INVOKE or SHUTDOWN,
// with Lambda's field names.
type ExtEvent struct {
	EventType          string   `json:"eventType"`
	DeadlineMs         int64    `json:"deadlineMs"`
	RequestID          string   `json:"requestId,omitempty"`
	InvokedFunctionArn string   `json:"invokedFunctionArn,omitempty"`
	Tracing            *Tracing `json:"tracing,omitempty"`
	ShutdownReason     string   `json:"shutdownReason,omitempty"`
}

// Ext is one extension as the platform sees it.
type Ext struct {
	Name      string
	ID        string // Lambda-Extension-Identifier, set on register
	External  bool
	Events    []string
	State     ExtState
	ErrorType string

	FirstNextNs int64 // arrival of the first /next (marks it ready)
	LastNextNs  int64
	Nexts       int

	waiting bool
	events  chan ExtEvent
}

func (e *Ext) subscribed(ev string) bool {
	for _, x := range e.Events {
		if x == ev {
			return true
		}
	}
	return false
}

// Invoke is one invocation, from delivery to the runtime's answer.
type Invoke struct {
	ID              string
	DeadlineMs      int64
	FunctionArn     string
	TraceID         string
	ClientContext   string
	CognitoIdentity string
	Payload         []byte

	StartNs       int64 // released to the runtime and extensions
	DeliveredNs   int64 // the runtime's /next returned it
	ResponseNs    int64 // response or error request arrived
	ResponseEndNs int64 // its body was read
	RuntimeDoneNs int64 // the runtime called /next again
	ProducedBytes int
	Status        string // success, error, timeout
	ErrorType     string
	answered      bool
	exts          []*Ext // INVOKE-subscribed extensions released with it
	extNexts      map[*Ext]int
}

// FunctionConfig is what register responses, envs and events say about the function.
type FunctionConfig struct {
	FunctionName string
	Version      string
	Handler      string
	AccountID    string
	Region       string
	MemoryMB     int
}

// Arn is the invoked function ARN Lambda reports.
func (f FunctionConfig) Arn() string {
	return "arn:aws:lambda:" + f.Region + ":" + f.AccountID + ":function:" + f.FunctionName
}

// Core holds the state machines of the extensions and the runtime. The HTTP
// layer calls its API methods; the lifecycle engine waits on its conditions.
// It never touches processes or sockets.
type Core struct {
	fn  FunctionConfig
	hub *telemetry.Hub

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every state change
	exts      []*Ext
	byID      map[string]*Ext
	byName    map[string]*Ext
	regClosed bool
	initEnded bool

	rtWaiting     bool
	rtFirstNextNs int64
	rtInitError   string
	rtExited      bool
	rtInvokes     chan *Invoke
	cur           *Invoke

	// OnState, when set, hears every state change (name, new state), with
	// c.mu held: it must be quick and must not call back into Core. The
	// engine writes these to the timeline.
	OnState func(name, state string)
}

func (c *Core) setExtState(e *Ext, st ExtState) {
	if e.State == st {
		return
	}
	e.State = st
	if c.OnState != nil {
		c.OnState(e.Name, st.String())
	}
}

func (c *Core) rtState(st string) {
	if c.OnState != nil {
		c.OnState(NameRuntime, st)
	}
}

// NewCore returns a Core for fn. hub may be nil (telemetry routes answer 500).
func NewCore(fn FunctionConfig, hub *telemetry.Hub) *Core {
	return &Core{
		fn:        fn,
		hub:       hub,
		changed:   make(chan struct{}),
		byID:      map[string]*Ext{},
		byName:    map[string]*Ext{},
		rtInvokes: make(chan *Invoke, 1),
	}
}

func (c *Core) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor blocks until cond (called with c.mu held) is true or ctx ends.
func (c *Core) waitFor(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		if cond() {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AddExternal declares an external extension, named after its file in the
// extensions directory, before its process starts.
func (c *Core) AddExternal(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.byName[name]; dup {
		return
	}
	e := &Ext{Name: name, External: true, State: ExtLaunched, events: make(chan ExtEvent, 1)}
	c.exts = append(c.exts, e)
	c.byName[name] = e
	c.notifyLocked()
}

// Extensions returns a snapshot of every extension, in declaration order.
func (c *Core) Extensions() []Ext {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Ext, len(c.exts))
	for i, e := range c.exts {
		out[i] = *e
		out[i].Events = append([]string(nil), e.Events...)
		out[i].events = nil
	}
	return out
}

// RegisterResponse is the body of a successful register.
type RegisterResponse struct {
	FunctionName    string `json:"functionName"`
	FunctionVersion string `json:"functionVersion"`
	Handler         string `json:"handler"`
	AccountID       string `json:"accountId,omitempty"`
}

// Register handles POST /extension/register.
func (c *Core) Register(name string, body []byte, acceptFeature string) (string, RegisterResponse, *APIError) {
	var resp RegisterResponse
	if e := CheckExtensionName(name); e != nil {
		return "", resp, e
	}
	var req struct {
		Events            []string `json:"events"`
		ConfigurationKeys []string `json:"configurationKeys"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "", resp, apiErr(http.StatusForbidden, ErrInvalidRequestFormat, "register body is not valid JSON: %v", err)
	}
	if len(req.ConfigurationKeys) != 0 {
		return "", resp, apiErr(http.StatusForbidden, ErrInvalidRequestFormat, "configurationKeys are deprecated; use environment variables instead")
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	e, external := c.byName[name]
	external = external && e.External
	events := make([]string, 0, len(req.Events))
	for _, ev := range req.Events {
		switch ev {
		case EventInvoke:
		case EventShutdown:
			if !external {
				return "", resp, apiErr(http.StatusForbidden, ErrInvalidEventType, "%s: internal extensions may not subscribe to SHUTDOWN", ev)
			}
		default:
			return "", resp, apiErr(http.StatusForbidden, ErrInvalidEventType, "%s: unknown event type (want INVOKE or SHUTDOWN)", ev)
		}
		if !contains(events, ev) {
			events = append(events, ev)
		}
	}
	if c.regClosed {
		return "", resp, apiErr(http.StatusForbidden, ErrRegistrationClosed, "Extension registration closed already")
	}
	if external {
		if idx := c.indexLocked(e); idx >= MaxExtensions {
			return "", resp, apiErr(http.StatusForbidden, ErrTooManyExtensions, "Extension limit (%d) reached", MaxExtensions)
		}
		if e.State != ExtLaunched {
			return "", resp, apiErr(http.StatusForbidden, ErrInvalidExtensionState, "State transition from %s to Registered failed for extension %s", e.State, name)
		}
	} else {
		if e != nil {
			return "", resp, apiErr(http.StatusForbidden, ErrInvalidExtensionState, "Extension with this name already registered")
		}
		if len(c.exts) >= MaxExtensions {
			return "", resp, apiErr(http.StatusForbidden, ErrTooManyExtensions, "Extension limit (%d) reached", MaxExtensions)
		}
		e = &Ext{Name: name, events: make(chan ExtEvent, 1)}
		c.exts = append(c.exts, e)
		c.byName[name] = e
	}
	e.ID = uuid.NewString()
	e.Events = events
	c.setExtState(e, ExtRegistered)
	c.byID[e.ID] = e
	c.notifyLocked()

	resp = RegisterResponse{FunctionName: c.fn.FunctionName, FunctionVersion: c.fn.Version, Handler: c.fn.Handler}
	for _, f := range strings.Split(acceptFeature, ",") {
		if strings.TrimSpace(f) == "accountId" {
			resp.AccountID = c.fn.AccountID
		}
	}
	return e.ID, resp, nil
}

func (c *Core) indexLocked(e *Ext) int {
	for i, x := range c.exts {
		if x == e {
			return i
		}
	}
	return -1
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// identify resolves a Lambda-Extension-Identifier header value.
func (c *Core) identify(id string) (*Ext, *APIError) {
	if id == "" {
		return nil, apiErr(http.StatusForbidden, ErrMissingExtensionIdentifier, "Missing Lambda-Extension-Identifier header")
	}
	if _, err := uuid.Parse(id); err != nil {
		return nil, apiErr(http.StatusForbidden, ErrInvalidExtensionIdentifier, "Invalid Lambda-Extension-Identifier")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, apiErr(http.StatusForbidden, ErrUnknownExtensionIdentifier, "Unknown extension %s", id)
	}
	return e, nil
}

// Identify returns the name of the extension behind an identifier header.
func (c *Core) Identify(id string) (string, *APIError) {
	e, err := c.identify(id)
	if err != nil {
		return "", err
	}
	return e.Name, nil
}

// errClientGone means the caller of a long-poll went away; nothing is sent.
var errClientGone = &APIError{Status: 499, Type: "ClientClosedRequest", Message: "client went away"}

// ExtNext handles GET /extension/event/next: it marks the extension ready
// (arrivalNs is the request's arrival on CLOCK_MONOTONIC) and blocks until the
// engine hands it an event or ctx ends.
func (c *Core) ExtNext(ctx context.Context, id string, arrivalNs int64) (ExtEvent, *APIError) {
	e, aerr := c.identify(id)
	if aerr != nil {
		return ExtEvent{}, aerr
	}
	c.mu.Lock()
	switch {
	case e.waiting:
		c.mu.Unlock()
		return ExtEvent{}, apiErr(http.StatusForbidden, ErrInvalidExtensionState, "State transition from Ready to Ready failed for extension %s: a /next is already pending", e.Name)
	case e.State != ExtRegistered && e.State != ExtRunning && e.State != ExtReady:
		st := e.State
		c.mu.Unlock()
		return ExtEvent{}, apiErr(http.StatusForbidden, ErrInvalidExtensionState, "State transition from %s to Ready failed for extension %s", st, e.Name)
	}
	if e.FirstNextNs == 0 {
		e.FirstNextNs = arrivalNs
	}
	e.LastNextNs = arrivalNs
	e.Nexts++
	c.setExtState(e, ExtReady)
	e.waiting = true
	c.notifyLocked()
	c.mu.Unlock()

	select {
	case ev := <-e.events:
		c.mu.Lock()
		e.waiting = false
		if e.State == ExtReady {
			c.setExtState(e, ExtRunning)
		}
		c.notifyLocked()
		c.mu.Unlock()
		return ev, nil
	case <-ctx.Done():
		c.mu.Lock()
		e.waiting = false
		c.notifyLocked()
		c.mu.Unlock()
		return ExtEvent{}, errClientGone
	}
}

// ExtError handles POST /extension/init/error (init=true) and /exit/error.
func (c *Core) ExtError(id string, init bool, errorType string) *APIError {
	e, aerr := c.identify(id)
	if aerr != nil {
		return aerr
	}
	if errorType == "" {
		return apiErr(http.StatusForbidden, ErrMissingHeader, "Lambda-Extension-Function-Error-Type not found")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	target := ExtExitError
	if init {
		target = ExtInitError
		if c.initEnded {
			return apiErr(http.StatusForbidden, ErrInvalidExtensionState, "State transition from %s to InitError failed for extension %s: init has ended", e.State, e.Name)
		}
	}
	if e.State == ExtInitError || e.State == ExtExitError || e.State == ExtExited || e.State == ExtLaunched {
		return apiErr(http.StatusForbidden, ErrInvalidExtensionState, "State transition from %s to %s failed for extension %s", e.State, target, e.Name)
	}
	c.setExtState(e, target)
	e.ErrorType = errorType
	c.notifyLocked()
	return nil
}

// Subscribe handles PUT /2022-07-01/telemetry and PUT /2020-08-15/logs.
func (c *Core) Subscribe(logs bool, id string, body []byte) (int, []byte, *APIError) {
	e, aerr := c.identify(id)
	if aerr != nil {
		return 0, nil, aerr
	}
	if c.hub == nil {
		return 0, nil, apiErr(http.StatusInternalServerError, ErrInternalServerError, "telemetry is not available in this platform")
	}
	api := telemetry.TelemetryAPI
	if logs {
		api = telemetry.LogsAPI
	}
	st, resp := c.hub.Subscribe(api, e.Name, body)
	return st, resp, nil
}

// RuntimeNext handles GET /runtime/invocation/next. The first call closes
// extension registration (Lambda's step 5); a call after an answered invoke
// marks that invoke's runtimeDone.
func (c *Core) RuntimeNext(ctx context.Context, arrivalNs int64) (*Invoke, *APIError) {
	c.mu.Lock()
	if c.rtWaiting {
		c.mu.Unlock()
		return nil, apiErr(http.StatusForbidden, ErrInvalidStateTransition, "State transition from Ready to Ready failed for runtime: a /next is already pending")
	}
	if c.cur != nil && !c.cur.answered {
		c.mu.Unlock()
		return nil, apiErr(http.StatusForbidden, ErrInvalidStateTransition, "State transition from Running to Ready failed for runtime: invocation %s has no response yet", c.cur.ID)
	}
	if c.rtFirstNextNs == 0 {
		c.rtFirstNextNs = arrivalNs
		c.regClosed = true
	}
	if c.cur != nil && c.cur.RuntimeDoneNs == 0 {
		c.cur.RuntimeDoneNs = arrivalNs
	}
	c.rtWaiting = true
	c.rtState("Ready")
	c.notifyLocked()
	c.mu.Unlock()

	select {
	case inv := <-c.rtInvokes:
		c.mu.Lock()
		c.rtWaiting = false
		inv.DeliveredNs = MonoNow()
		c.cur = inv
		c.rtState("Running")
		c.notifyLocked()
		c.mu.Unlock()
		return inv, nil
	case <-ctx.Done():
		c.mu.Lock()
		c.rtWaiting = false
		c.notifyLocked()
		c.mu.Unlock()
		return nil, errClientGone
	}
}

// RuntimeAnswer handles POST /runtime/invocation/{id}/response (isError
// false) and /error. tooLarge means the body exceeded MaxResponseBytes.
func (c *Core) RuntimeAnswer(id string, isError bool, errorType string, n int, tooLarge bool, arrivalNs int64) *APIError {
	c.mu.Lock()
	defer c.mu.Unlock()
	inv := c.cur
	if inv == nil || id == "" || inv.ID != id || inv.answered {
		return apiErr(http.StatusBadRequest, ErrInvalidRequestID, "Invalid request ID")
	}
	inv.answered = true
	c.rtState("Responded")
	inv.ResponseNs = arrivalNs
	inv.ResponseEndNs = MonoNow()
	inv.ProducedBytes = n
	c.notifyLocked()
	switch {
	case tooLarge:
		inv.Status, inv.ErrorType = "error", ErrFunctionResponseTooLarge
		return apiErr(http.StatusRequestEntityTooLarge, ErrRequestEntityTooLarge, "Exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes)
	case isError:
		if errorType == "" {
			errorType = ErrRuntimeUnknown
		}
		inv.Status, inv.ErrorType = "error", errorType
	default:
		inv.Status = "success"
	}
	return nil
}

// RuntimeInitError handles POST /runtime/init/error.
func (c *Core) RuntimeInitError(errorType string) *APIError {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.initEnded || c.rtFirstNextNs != 0 {
		return apiErr(http.StatusForbidden, ErrInvalidStateTransition, "State transition to InitError failed for runtime: init has already ended")
	}
	if errorType == "" {
		errorType = ErrRuntimeUnknown
	}
	if c.rtInitError == "" {
		c.rtInitError = errorType
		c.rtState("InitError")
	}
	c.notifyLocked()
	return nil
}

// --- engine side ---

// ExtExited records that an extension's process is gone.
func (c *Core) ExtExited(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byName[name]; ok {
		if e.ErrorType == "" && e.FirstNextNs == 0 && !c.initEnded {
			e.ErrorType = ErrExtensionCrash
		}
		if e.State != ExtInitError && e.State != ExtExitError {
			c.setExtState(e, ExtExited)
		}
		c.notifyLocked()
	}
}

// RuntimeExited records that the runtime process is gone.
func (c *Core) RuntimeExited() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rtExited = true
	c.rtState("Exited")
	c.notifyLocked()
}

// allRegisteredLocked: every external extension has left Launched.
func (c *Core) allRegisteredLocked() bool {
	for _, e := range c.exts {
		if e.State == ExtLaunched {
			return false
		}
	}
	return true
}

// initVerdict is how init ended.
type initVerdict struct {
	Done      bool
	Status    string // success, error, failure (timeout is decided by the engine)
	ErrorType string
	Culprit   string // who failed it, or who ended it on success
	LastNs    int64  // last /next arrival (success), or the failure instant
	StartNs   int64  // its initStart (set by the platform)
}

// initVerdictLocked decides whether init is over. Failures win over readiness.
func (c *Core) initVerdictLocked() initVerdict {
	for _, e := range c.exts {
		switch {
		case e.State == ExtInitError:
			return initVerdict{Done: true, Status: "error", ErrorType: e.ErrorType, Culprit: e.Name, LastNs: MonoNow()}
		case e.State == ExtExited && e.FirstNextNs == 0:
			return initVerdict{Done: true, Status: "error", ErrorType: ErrExtensionCrash, Culprit: e.Name, LastNs: MonoNow()}
		}
	}
	if c.rtInitError != "" {
		return initVerdict{Done: true, Status: "error", ErrorType: c.rtInitError, Culprit: NameRuntime, LastNs: MonoNow()}
	}
	if c.rtExited && c.rtFirstNextNs == 0 {
		return initVerdict{Done: true, Status: "error", ErrorType: ErrRuntimeExit, Culprit: NameRuntime, LastNs: MonoNow()}
	}
	if c.rtFirstNextNs == 0 {
		return initVerdict{}
	}
	v := initVerdict{Done: true, Status: "success", Culprit: NameRuntime, LastNs: c.rtFirstNextNs}
	for _, e := range c.exts {
		if e.FirstNextNs == 0 {
			if e.State == ExtExitError {
				continue // it gave up; Lambda does not wait for it
			}
			return initVerdict{}
		}
		if e.FirstNextNs > v.LastNs {
			v.LastNs, v.Culprit = e.FirstNextNs, e.Name
		}
	}
	return v
}

// reset forgets every extension, registration and runtime state, for a
// suppressed init in a fresh environment with hub as its telemetry.
func (c *Core) reset(hub *telemetry.Hub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hub = hub
	c.exts = nil
	c.byID, c.byName = map[string]*Ext{}, map[string]*Ext{}
	c.regClosed, c.initEnded = false, false
	c.rtWaiting, c.rtFirstNextNs, c.rtInitError, c.rtExited = false, 0, "", false
	c.rtInvokes = make(chan *Invoke, 1)
	c.cur = nil
	c.notifyLocked()
}

// endInit closes registration and marks init over, so late calls fail as in Lambda.
func (c *Core) endInit() {
	c.mu.Lock()
	c.regClosed = true
	c.initEnded = true
	c.notifyLocked()
	c.mu.Unlock()
	if c.hub != nil {
		c.hub.EndInit()
	}
}

// startInvoke releases inv to the runtime and every INVOKE-subscribed,
// ready extension, together.
func (c *Core) startInvoke(inv *Invoke, ev ExtEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	inv.StartNs = MonoNow()
	inv.extNexts = map[*Ext]int{}
	for _, e := range c.exts {
		if e.subscribed(EventInvoke) && (e.State == ExtReady || e.State == ExtRegistered) {
			inv.exts = append(inv.exts, e)
			inv.extNexts[e] = e.Nexts
			offer(e.events, ev)
		}
	}
	c.rtInvokes <- inv
	c.notifyLocked()
}

// offer puts ev in a 1-slot mailbox, replacing anything not yet taken.
func offer(ch chan ExtEvent, ev ExtEvent) {
	for {
		select {
		case ch <- ev:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

// invokeExtsDoneLocked: every extension released with inv called /next
// again (or can no longer).
func (c *Core) invokeExtsDoneLocked(inv *Invoke) (bool, int64) {
	var last int64
	for _, e := range inv.exts {
		switch {
		case e.Nexts > inv.extNexts[e] && e.State == ExtReady:
			if e.LastNextNs > last {
				last = e.LastNextNs
			}
		case e.State == ExtExited || e.State == ExtExitError:
		default:
			return false, 0
		}
	}
	return true, last
}

// deliverShutdown sends SHUTDOWN to every SHUTDOWN-subscribed live extension
// and returns the names it went to, and the names to kill at once.
func (c *Core) deliverShutdown(ev ExtEvent) (sent, kill []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.exts {
		if e.State == ExtExited {
			continue
		}
		if e.subscribed(EventShutdown) && e.State != ExtLaunched {
			offer(e.events, ev)
			sent = append(sent, e.Name)
		} else {
			kill = append(kill, e.Name)
		}
	}
	sort.Strings(sent)
	sort.Strings(kill)
	return sent, kill
}

// MaxExtensionName is the longest extension name accepted: an external
// extension is named after its file in /opt/extensions, and a file name has
// at most NAME_MAX (255) bytes.
const MaxExtensionName = 255

// CheckExtensionName refuses, with Extension.InvalidExtensionName (403), a
// name that could not be the file name of an extension in /opt/extensions:
// empty (Lambda's documented case), longer than MaxExtensionName bytes, "."
// or "..", or holding a path separator.
func CheckExtensionName(name string) *APIError {
	switch {
	case name == "":
		return apiErr(http.StatusForbidden, ErrInvalidExtensionName, "Empty extension name")
	case len(name) > MaxExtensionName:
		return apiErr(http.StatusForbidden, ErrInvalidExtensionName, "Extension name too long: %d bytes (at most %d)", len(name), MaxExtensionName)
	case name == "." || name == "..":
		return apiErr(http.StatusForbidden, ErrInvalidExtensionName, "Invalid extension name %q", name)
	case strings.Contains(name, "/"):
		return apiErr(http.StatusForbidden, ErrInvalidExtensionName, "Invalid extension name %q: it may not contain a path separator", name)
	}
	return nil
}
