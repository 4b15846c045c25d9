// Package extension is initprof's Lambda platform emulator: the Extensions,
// Telemetry/Logs and Runtime APIs, the init → invoke → shutdown lifecycle, a
// simulated runtime, and the platform's own CLOCK_MONOTONIC timeline.
//
// It follows the split of AWS's Runtime Interface Emulator so that each layer
// can be tested alone:
//
//   - Core (state.go) holds the state machines of extensions and the runtime
//     and knows nothing about HTTP or processes;
//   - NewHandler (api.go) is the HTTP surface: routing, headers, status codes
//     and Lambda's error bodies, all answered from Core;
//   - Platform (engine.go) is the lifecycle engine: it spawns the extension
//     and runtime processes, drives Core through init, invokes and shutdown,
//     and writes the timeline.
//
// Unlike RIE it starts extensions eagerly, delivers real telemetry (through
// package extension/telemetry) and measures Init Duration the way Lambda
// does: from platform.initStart to the last /next of the runtime or an
// extension.
package extension
