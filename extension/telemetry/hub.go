package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// maxReplayBytes bounds the init replay buffer. Init rarely produces more than a few
// kilobytes of platform events, but a chatty runtime's log lines could otherwise grow it
// without limit while init waits for a slow extension.
const maxReplayBytes = 16 << 20

// encoded is one event, marshalled once at Publish and shared by every subscriber.
type encoded struct {
	category string
	data     []byte
}

// Hub owns subscriptions, buffering, delivery and the init replay buffer. All its
// methods are safe for concurrent use.
type Hub struct {
	opts      Options
	transport *http.Transport
	// hardCtx is cancelled when Close gives up waiting: it aborts in-flight deliveries
	// and backoff sleeps so every goroutine returns.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	wg         sync.WaitGroup

	mu          sync.Mutex
	initOpen    bool
	closed      bool
	replay      []encoded
	replayBytes int
	replayFull  bool
	subs        map[string]*subscriber
	apis        map[string]API // the API each extension subscribed through
}

// NewHub returns a hub in the init phase: events are kept for replay until EndInit.
func NewHub(opts Options) *Hub {
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		opts: o,
		// A private transport so Close can drop its idle connections (no leaked
		// goroutines) and no proxy from the environment is ever used for the sandbox.
		transport:  &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		hardCtx:    ctx,
		hardCancel: cancel,
		initOpen:   true,
		subs:       map[string]*subscriber{},
		apis:       map[string]API{},
	}
}

// Publish stamps ev.Time with Options.Now when it is zero, broadcasts ev to every
// subscriber whose types include Category(ev.Type), and, while init is open, appends it
// to the replay buffer. An event whose record cannot be marshalled is reported through
// Observe ("publish_error") and dropped. Publish never blocks on delivery.
func (h *Hub) Publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = h.opts.Now()
	}
	data, err := json.Marshal(ev)
	if err != nil {
		h.opts.Observe(Observation{Kind: "publish_error", Err: fmt.Sprintf("event %s: %v", ev.Type, err)})
		return
	}
	h.publishEncoded(encoded{category: Category(ev.Type), data: data})
}

// Wants reports whether an event of eventType would go anywhere: into the
// init replay buffer (init open, buffer not full) or to a subscriber of its
// category. Publishing log lines nobody can receive is skipped on this, so a
// chatty process costs no marshalling.
func (h *Hub) Wants(eventType string) bool {
	c := Category(eventType)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	if h.initOpen && !h.replayFull {
		return true
	}
	for _, s := range h.subs {
		if s.wants(c) {
			return true
		}
	}
	return false
}

func (h *Hub) publishEncoded(e encoded) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.initOpen && !h.replayFull {
		if h.replayBytes+len(e.data) > maxReplayBytes {
			h.replayFull = true
			h.opts.Observe(Observation{Kind: "publish_error", Err: fmt.Sprintf("init replay buffer is full (%d bytes): later init events are not replayed", maxReplayBytes)})
		} else {
			h.replay = append(h.replay, e)
			h.replayBytes += len(e.data)
		}
	}
	for _, s := range h.subs {
		if s.wants(e.category) {
			s.enqueue(e)
		}
	}
}

// Subscribe handles the body of PUT /2022-07-01/telemetry (TelemetryAPI) or
// PUT /2020-08-15/logs (LogsAPI) for an extension the core has already identified.
// It returns the HTTP status and body to send:
//   - 200 with body "OK" (plain text, as Lambda answers);
//   - 400 {"errorMessage","errorType":"ValidationError"} for a bad body;
//   - 403 Telemetry.SubscriptionClosed (Logs.SubscriptionClosed on the Logs API) after
//     EndInit or Close;
//   - 403 of the same type when the extension already subscribed through the other API;
//   - 500 InternalError when extName is empty or the destination host cannot be resolved.
//
// Error bodies are JSON. On success the subscription replaces any earlier one of the same
// extension, the buffered init events are queued to it (filtered by its types) ahead of
// anything newer, and platform.telemetrySubscription (platform.logsSubscription on the
// Logs API) is published.
func (h *Hub) Subscribe(api API, extName string, body []byte) (status int, resp []byte) {
	refuse := func(status int, msg, typ string) (int, []byte) {
		h.opts.Observe(Observation{Kind: "subscribe_refused", Subscriber: extName, Status: status, Err: msg})
		return status, errorResponse(msg, typ)
	}
	if extName == "" {
		return refuse(http.StatusInternalServerError, "subscribe was called without an extension name", ErrInternal)
	}
	sub, err := ParseSubscription(api, body)
	if err != nil {
		return refuse(http.StatusBadRequest, err.Error(), ErrValidation)
	}
	addr, err := h.opts.Resolve(sub.Host)
	if err != nil {
		return refuse(http.StatusInternalServerError, err.Error(), ErrInternal)
	}

	h.mu.Lock()
	if !h.initOpen || h.closed {
		h.mu.Unlock()
		return refuse(http.StatusForbidden, api.String()+" API subscription is closed already", closedErrorType(api))
	}
	if prev, ok := h.apis[extName]; ok && prev != api {
		h.mu.Unlock()
		// Lambda documents only that "any attempt to subscribe using the other API returns
		// an error"; AWS's emulator has no real implementation to observe. 403 with the
		// requested API's SubscriptionClosed type is our choice: the body is valid, the
		// API is closed to this extension, and clients already treat that 403 as final.
		return refuse(http.StatusForbidden, fmt.Sprintf("extension %s already subscribed through the %s API; Lambda lets an extension use only one of the Telemetry and Logs APIs", extName, prev), closedErrorType(api))
	}
	s := newSubscriber(h, extName, sub, addr)
	replayed, replayedBytes := 0, 0
	for _, e := range h.replay {
		if s.wants(e.category) {
			s.enqueue(e)
			replayed++
			replayedBytes += len(e.data)
		}
	}
	old := h.subs[extName]
	h.subs[extName] = s
	h.apis[extName] = api
	h.wg.Add(1)
	go s.run()
	h.opts.Observe(Observation{Kind: "subscribe", Subscriber: extName, Events: replayed, Bytes: replayedBytes, Port: sub.Port})
	if replayed > 0 {
		h.opts.Observe(Observation{Kind: "replay", Subscriber: extName, Events: replayed, Bytes: replayedBytes})
	}
	h.mu.Unlock()

	if old != nil {
		// Lambda lets an extension update its subscription: the old destination gets what
		// it already has queued, then stops.
		old.retire()
	}
	typ := TypeTelemetrySubscription
	if api == LogsAPI {
		typ = TypeLogsSubscription
	}
	// Lambda reports a repeated subscribe of the same extension with state
	// "Already subscribed" (seen in a real function's telemetry stream, github.com/
	// Danwakeem/aws-lambda-telemetry-failure); the first one is "Subscribed".
	state := subscriptionStateSubscrib
	if old != nil {
		state = subscriptionStateAgain
	}
	h.Publish(Event{Type: typ, Record: TelemetrySubscriptionRecord{Name: extName, State: state, Types: sub.Types}})
	return http.StatusOK, []byte("OK")
}

func closedErrorType(api API) string {
	if api == LogsAPI {
		return ErrLogsClosed
	}
	return ErrTelemetryClosed
}

// EndInit drops the replay buffer; later Subscribe calls get 403
// Telemetry.SubscriptionClosed. Existing subscriptions keep receiving events.
func (h *Hub) EndInit() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.initOpen = false
	h.replay = nil
	h.replayBytes = 0
}

// Flush makes every subscriber send what it holds now, without waiting for timeoutMs,
// and waits until those events are delivered or given up on, or ctx ends (then it
// returns ctx's error; delivery goes on). Subscriptions stay open. The core calls it
// when SHUTDOWN starts, so extensions get the last invoke's platform.report while
// they still run, as in Lambda.
func (h *Hub) Flush(ctx context.Context) error {
	h.mu.Lock()
	subs := make([]*subscriber, 0, len(h.subs))
	for _, s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	targets := make([]uint64, len(subs))
	for i, s := range subs {
		targets[i] = s.requestFlush()
	}
	for i, s := range subs {
		if err := s.waitDone(ctx, targets[i]); err != nil {
			return err
		}
	}
	return nil
}

// Close flushes every subscriber's buffer at once (input closing flushes, as in Lambda),
// waits for the deliveries until ctx is done, then aborts whatever is left and stops all
// goroutines. It returns ctx.Err() when it had to abort. Publish after Close is a no-op.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.initOpen = false
	h.replay = nil
	subs := make([]*subscriber, 0, len(h.subs))
	for _, s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.retire()
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		h.hardCancel()
		<-done
	}
	h.hardCancel()
	h.transport.CloseIdleConnections()
	return err
}

// Subscriptions returns the current subscription of each extension (keyed by name), for
// the platform's summary and timeline.
func (h *Hub) Subscriptions() map[string]Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]Subscription, len(h.subs))
	for name, s := range h.subs {
		out[name] = s.sub
	}
	return out
}
