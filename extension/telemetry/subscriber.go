package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// droppedReason is the reason Lambda gives in platform.logsDropped.
const droppedReason = "Consumer seems to have fallen behind as it has not acknowledged receipt of events."

// queued is one event waiting for delivery, with the (monotonic) time it was queued,
// which starts the timeoutMs clock of the batch it opens.
type queued struct {
	e   encoded
	at  time.Time
	seq uint64 // 1, 2, ... in queue order; Flush waits on it
}

// subscriber is one extension's subscription: a queue and one goroutine that forms
// batches and delivers them in order. One goroutine per subscriber keeps delivery
// ordered and lets a slow consumer fall behind alone.
type subscriber struct {
	h     *Hub
	name  string
	sub   Subscription
	addr  string // resolved IP to dial
	types [3]bool
	wake  chan struct{}

	client *http.Client
	url    string
	conn   net.Conn // TCP only; touched only by run's goroutine

	mu             sync.Mutex
	queue          []queued
	queuedBytes    int
	closing        bool
	droppedBytes   int64
	droppedRecords int64
	seq            uint64        // seq of the last queued event
	doneSeq        uint64        // every event up to it was delivered or given up on
	flushTo        uint64        // events up to it leave without waiting for timeoutMs
	progress       chan struct{} // closed (and replaced) whenever doneSeq advances
	exited         chan struct{} // closed when run returns
}

func newSubscriber(h *Hub, name string, sub Subscription, addr string) *subscriber {
	s := &subscriber{h: h, name: name, sub: sub, addr: addr, wake: make(chan struct{}, 1),
		progress: make(chan struct{}), exited: make(chan struct{})}
	for _, t := range sub.Types {
		if i := categoryIndex(t); i >= 0 {
			s.types[i] = true
		}
	}
	if sub.Protocol == destinationProtocolHTTP {
		s.client = &http.Client{Transport: h.transport, Timeout: h.opts.RequestTimeout}
		s.url = "http://" + net.JoinHostPort(addr, strconv.Itoa(sub.Port)) + sub.Path
	}
	return s
}

func categoryIndex(c string) int {
	switch c {
	case CategoryPlatform:
		return 0
	case CategoryFunction:
		return 1
	case CategoryExtension:
		return 2
	}
	return -1
}

func (s *subscriber) wants(category string) bool {
	i := categoryIndex(category)
	return i >= 0 && s.types[i]
}

func (s *subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue adds e, or counts it as dropped when the subscriber already holds more than
// MaxQueuedBytes: a consumer that lags must not grow the platform's memory.
func (s *subscriber) enqueue(e encoded) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if s.queuedBytes+len(e.data) > s.h.opts.MaxQueuedBytes {
		s.droppedRecords++
		s.droppedBytes += int64(len(e.data))
		s.mu.Unlock()
		s.h.opts.Observe(Observation{Kind: "dropped", Subscriber: s.name, Events: 1, Bytes: len(e.data), Err: "queue full"})
		s.poke()
		return
	}
	s.seq++
	s.queue = append(s.queue, queued{e: e, at: time.Now(), seq: s.seq})
	s.queuedBytes += len(e.data)
	s.mu.Unlock()
	s.poke()
}

// retire makes the subscriber flush what it holds without waiting for timeoutMs, accept
// nothing new, and stop.
func (s *subscriber) retire() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.poke()
}

// batch is what one delivery sends.
type batch struct {
	items         [][]byte
	bytes         int   // sum of item sizes
	events        int   // queue events in items (the logsDropped notice excluded)
	eventBytes    int   // their bytes
	noticeRecords int64 // droppedRecords the notice reports (0: no notice)
	noticeBytes   int64
	hasDropNotice bool
	lastSeq       uint64 // seq of the last queue event in items (0: none)
}

// take forms the next batch when one is due. It returns (nil, wait, false) when the
// caller should sleep up to wait (wait < 0: until woken), and stop=true when the
// subscriber is retired and empty.
func (s *subscriber) take() (b *batch, wait time.Duration, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.queue)
	if n == 0 && s.droppedRecords == 0 {
		return nil, -1, s.closing
	}
	// A batch is due when it is full by count or size, when its first event has waited
	// timeoutMs, when input is closing, or when drops must be reported.
	ready := s.closing || s.droppedRecords > 0 || n >= s.sub.MaxItems || s.queuedBytes >= s.sub.MaxBytes ||
		(n > 0 && s.queue[0].seq <= s.flushTo)
	if !ready {
		wait = time.Until(s.queue[0].at.Add(time.Duration(s.sub.TimeoutMs) * time.Millisecond))
		if wait > 0 {
			return nil, wait, false
		}
	}
	b = &batch{}
	if s.droppedRecords > 0 {
		ev := Event{Time: s.h.opts.Now(), Type: TypeLogsDropped, Record: LogsDroppedRecord{DroppedBytes: s.droppedBytes, DroppedRecords: s.droppedRecords, Reason: droppedReason}}
		data, _ := json.Marshal(ev) // a fixed struct: cannot fail
		b.items = append(b.items, data)
		b.bytes += len(data)
		b.hasDropNotice = true
		b.noticeRecords, b.noticeBytes = s.droppedRecords, s.droppedBytes
	}
	// Never split an event: keep adding while under maxBytes, so a payload may exceed
	// maxBytes by at most one event (Lambda documents up to 2x maxBytes).
	i := 0
	for i < n && len(b.items) < s.sub.MaxItems && b.bytes < s.sub.MaxBytes {
		d := s.queue[i].e.data
		b.items = append(b.items, d)
		b.bytes += len(d)
		b.events++
		b.eventBytes += len(d)
		b.lastSeq = s.queue[i].seq
		i++
	}
	s.queue = append(s.queue[:0:0], s.queue[i:]...)
	s.queuedBytes -= b.eventBytes
	return b, 0, false
}

func (s *subscriber) run() {
	defer s.h.wg.Done()
	defer close(s.exited)
	defer s.closeConn()
	for {
		b, wait, stop := s.take()
		if stop {
			return
		}
		if b == nil {
			var timer *time.Timer
			var tc <-chan time.Time
			if wait >= 0 {
				timer = time.NewTimer(wait)
				tc = timer.C
			}
			select {
			case <-s.wake:
			case <-tc:
			case <-s.h.hardCtx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		if s.deliver(b) {
			s.mu.Lock()
			if b.hasDropNotice {
				s.droppedRecords -= b.noticeRecords
				s.droppedBytes -= b.noticeBytes
			}
			s.advanceLocked(b.lastSeq)
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.droppedRecords += int64(b.events)
		s.droppedBytes += int64(b.eventBytes)
		s.advanceLocked(b.lastSeq)
		closing := s.closing
		s.mu.Unlock()
		if b.events > 0 {
			s.h.opts.Observe(Observation{Kind: "dropped", Subscriber: s.name, Events: b.events, Bytes: b.eventBytes, Err: "delivery failed"})
		}
		if closing {
			// Input is closed and the consumer is gone: what is left cannot be delivered.
			s.mu.Lock()
			n, nb := len(s.queue), s.queuedBytes
			s.queue, s.queuedBytes = nil, 0
			s.droppedRecords = 0
			s.advanceLocked(s.seq)
			s.mu.Unlock()
			if n > 0 {
				s.h.opts.Observe(Observation{Kind: "dropped", Subscriber: s.name, Events: n, Bytes: nb, Err: "closing with the consumer unreachable"})
			}
			return
		}
		// Pause before the next cycle so an absent consumer does not cost a hot loop.
		if !s.sleep(s.pause()) {
			return
		}
	}
}

// advanceLocked records that every event up to seq is finished and wakes Flush waiters.
func (s *subscriber) advanceLocked(seq uint64) {
	if seq > s.doneSeq {
		s.doneSeq = seq
		close(s.progress)
		s.progress = make(chan struct{})
	}
}

// requestFlush marks everything queued so far as due now and returns the seq to wait for.
func (s *subscriber) requestFlush() uint64 {
	s.mu.Lock()
	target := s.seq
	if target > s.flushTo {
		s.flushTo = target
	}
	s.mu.Unlock()
	s.poke()
	return target
}

// waitDone waits until every event up to target is finished, the subscriber stopped,
// or ctx ends.
func (s *subscriber) waitDone(ctx context.Context, target uint64) error {
	for {
		s.mu.Lock()
		done, ch := s.doneSeq >= target, s.progress
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-s.exited:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("telemetry flush to %s: %w", s.name, ctx.Err())
		}
	}
}

func (s *subscriber) pause() time.Duration {
	if bo := s.h.opts.RetryBackoff; len(bo) > 0 {
		return bo[len(bo)-1]
	}
	return 100 * time.Millisecond
}

// sleep waits d unless the hub is aborting; it reports whether to carry on.
func (s *subscriber) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.h.hardCtx.Done():
		return false
	}
}

// deliver sends b, retrying connection errors and 5xx answers with RetryBackoff.
func (s *subscriber) deliver(b *batch) bool {
	var payload []byte
	if s.sub.Protocol == destinationProtocolTCP {
		payload = make([]byte, 0, b.bytes+len(b.items))
		for _, it := range b.items {
			payload = append(payload, it...)
			payload = append(payload, '\n')
		}
	} else {
		payload = make([]byte, 0, b.bytes+len(b.items)+1)
		payload = append(payload, '[')
		for i, it := range b.items {
			if i > 0 {
				payload = append(payload, ',')
			}
			payload = append(payload, it...)
		}
		payload = append(payload, ']')
	}
	backoff := s.h.opts.RetryBackoff
	for attempt := 1; ; attempt++ {
		status, err := s.send(payload)
		if err == nil {
			s.h.opts.Observe(Observation{Kind: "deliver", Subscriber: s.name, Events: len(b.items), Bytes: len(payload), Status: status, Attempt: attempt})
			return true
		}
		s.h.opts.Observe(Observation{Kind: "deliver_error", Subscriber: s.name, Events: len(b.items), Bytes: len(payload), Status: status, Attempt: attempt, Err: err.Error()})
		retryable := status == 0 || status >= 500 || status == http.StatusTooManyRequests
		if !retryable || attempt > len(backoff) || s.h.hardCtx.Err() != nil {
			return false
		}
		if !s.sleep(backoff[attempt-1]) {
			return false
		}
	}
}

// send makes one delivery attempt. status is the HTTP status (0 for TCP or when no
// answer arrived).
func (s *subscriber) send(payload []byte) (int, error) {
	if s.sub.Protocol == destinationProtocolTCP {
		return 0, s.sendTCP(payload)
	}
	req, err := http.NewRequestWithContext(s.h.hardCtx, http.MethodPost, s.url, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	// Keep the Host the extension subscribed with (e.g. sandbox.localdomain:8080).
	req.Host = net.JoinHostPort(s.sub.Host, strconv.Itoa(s.sub.Port))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", s.sub.URI, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("POST %s: consumer answered %s", s.sub.URI, resp.Status)
	}
	return resp.StatusCode, nil
}

// sendTCP writes the NDJSON payload on the subscriber's single connection, dialling it
// first if needed; after a failure the connection is dropped and the next attempt redials.
func (s *subscriber) sendTCP(payload []byte) error {
	target := net.JoinHostPort(s.addr, strconv.Itoa(s.sub.Port))
	if s.conn == nil {
		ctx, cancel := context.WithTimeout(s.h.hardCtx, s.h.opts.RequestTimeout)
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
		cancel()
		if err != nil {
			return fmt.Errorf("TCP %s: %w", target, err)
		}
		s.conn = c
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.h.opts.RequestTimeout))
	if _, err := s.conn.Write(payload); err != nil {
		s.closeConn()
		return fmt.Errorf("TCP %s: %w", target, err)
	}
	return nil
}

func (s *subscriber) closeConn() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
