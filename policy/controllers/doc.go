// Package controllers holds the parts of faultline-webhook that act on the
// cluster over time rather than at admission; cmd/faultline-webhook wires
// them and registers their metrics, nothing else imports them. All of them
// read and write through the API server and run on the leader:
//
//   - Guard (guard.go): pauses an injected pod while policy.Hold gives a
//     reason, lifts only its own pauses;
//   - KillSwitch (killswitch.go): each policy's status.injectedPods and
//     per-policy gauges;
//   - AbortWatcher (abort.go): abortWhen against Prometheus, fails closed;
//   - LeaseReserver and Sweeper (leases.go, sweeper.go): blast-radius slots
//     in Leases, bound to pod UIDs, freed when their pod is gone;
//   - MissedReporter and AgentProblemReporter (missed.go, agentproblems.go):
//     pods the injector never saw, and agents that could not start, told
//     to their owners once (report.go);
//   - informer.go: the metadata-only pod informer they and the webhook's
//     Notifier share.
package controllers
