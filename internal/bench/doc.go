// Package bench measures authflow on the machine it runs on: the worker's
// throughput against a bare loop doing the same work without the SDK, the
// ledger or the policy; how close it comes to the throughput its
// concurrency allows when Graph is slow, and how much faster it is than a
// script that handles one event at a time; how much of a Graph request
// budget it uses without being throttled; its publish-to-result latency at
// half load; its peak memory and start-up time while draining a large
// backlog; and the latency of interactive (helpdesk) events while a bulk
// backlog drains, with the bulk drain rate meanwhile.
//
// Everything runs locally: an embedded JetStream server, the Graph emulator
// (graphclienttest) on 127.0.0.1 and the real worker package. Each
// measurement gets a fresh JetStream store and a freshly seeded emulator,
// and all the measurements of a report are taken in one run, so that their
// ratios hold on a noisy machine. Run returns a Report; its Markdown method
// renders the table and its Summary method the one-line summary that
// `authflow bench` prints last.
//
// The backlog scenario runs the worker in a child process (see
// Config.ChildCommand and RunDrainChild) so that its peak RSS is the
// worker's alone, not the JetStream server's or the emulator's.
package bench
