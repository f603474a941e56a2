package main

import (
	"context"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/controllers"
	fwebhook "github.com/faultline-dev/faultline/webhook"
)

// wire adds every part of faultline-webhook to the manager: the injector
// and its policy engine, the validating webhook, the controllers that run
// on the leader (kill switch, abortWhen, blast-radius sweeper, missed
// injections, certificate rotation) and the health checks.
func wire(mgr ctrl.Manager, cfg fwebhook.Config, ownNamespace string, certs certOptions) error {
	ctx := context.Background()
	limiter := &policy.Policies{Source: fwebhook.ClientPolicies{Reader: mgr.GetClient()}, Decisions: policy.NewDecisionCache(4096)}
	if ownNamespace == "" {
		ctrl.Log.WithName("faultline-webhook").Info("no --namespace: blast radius (maxPods, maxPercent) is not enforced")
	} else if err := wireBlastRadius(ctx, mgr, limiter, ownNamespace); err != nil {
		return err
	}
	specs := policy.NewSpecCache(1024)
	if err := specs.Register(metrics.Registry); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if err := limiter.Decisions.Register(metrics.Registry); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if err := addRotator(mgr, certs); err != nil {
		return fmt.Errorf("certificate rotation: %w", err)
	}
	injector := fwebhook.NewInjector(cfg)
	// Decisions become Events on their pods once the informer sees them.
	notifier := fwebhook.NewNotifier(mgr.GetEventRecorder("faultline-webhook"), time.Minute)
	if _, err := controllers.WatchPodMetadata(ctx, mgr.GetCache(), notifier); err != nil {
		return fmt.Errorf("decision Events: %w", err)
	}
	mgr.GetWebhookServer().Register(fwebhook.Path, &webhook.Admission{Handler: &fwebhook.Handler{
		// Safety rules first, then the ChaosPolicies: no policy, no chaos.
		Decider: &policy.Engine{
			Safety:   policy.Safety{OwnNamespace: ownNamespace},
			Limiter:  limiter,
			Profiles: fwebhook.ClientProfiles{Reader: mgr.GetClient()},
			Specs:    specs,
		},
		Namespaces: fwebhook.ClientNamespaces{Reader: mgr.GetClient()},
		Injector:   injector,
		Metrics:    fwebhook.NewMetrics(metrics.Registry),
		Notifier:   notifier,
	}})
	mgr.GetWebhookServer().Register(fwebhook.ValidatePath, &webhook.Admission{Handler: &fwebhook.WorkloadValidator{
		Injector: injector, Namespaces: fwebhook.ClientNamespaces{Reader: mgr.GetClient()}}})

	// Policies bind running pods (kill switch, deletion, windows, limits,
	// selectors, opt-in, maxPercent); with --leader-elect one replica does it.
	if err := (&controllers.Guard{Client: mgr.GetClient(), Safety: policy.Safety{OwnNamespace: ownNamespace}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("guard: %w", err)
	}
	gauges, err := controllers.NewPolicyGauges(metrics.Registry)
	if err != nil {
		return err
	}
	if err := (&controllers.KillSwitch{Client: mgr.GetClient(), Gauges: gauges}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("policy status: %w", err)
	}
	// Pods that wanted chaos but were created while no replica answered.
	if err := (&controllers.AgentProblemReporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("faultline-webhook"),
		Problems: controllers.NewAgentProblemCounter(metrics.Registry)}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("agent problem reporter: %w", err)
	}
	if err := (&controllers.MissedReporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("faultline-webhook"),
		OwnNamespace: ownNamespace, Missed: controllers.NewMissedCounter(metrics.Registry)}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("missed-injection reporter: %w", err)
	}
	// abortWhen: policies pause themselves when their SLO query breaches.
	abortFailures, err := controllers.NewAbortFailures(metrics.Registry)
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if err := mgr.Add(&controllers.AbortWatcher{Client: mgr.GetClient(), Failures: abortFailures}); err != nil {
		return fmt.Errorf("abortWhen: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	return nil
}

// wireBlastRadius: slots live in Leases in faultline's namespace, read with
// a direct (uncached) client so every replica sees every write; group sizes
// come from a metadata-only pod informer; the leader frees slots.
func wireBlastRadius(ctx context.Context, mgr ctrl.Manager, limiter *policy.Policies, ownNamespace string) error {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return fmt.Errorf("blast radius: %w", err)
	}
	leases := &controllers.LeaseReserver{Client: direct, Namespace: ownNamespace}
	groups := policy.NewGroupCounter(leases, nil)
	if err := controllers.WatchGroups(ctx, mgr.GetCache(), groups); err != nil {
		return fmt.Errorf("blast-radius group counts: %w", err)
	}
	sweeper := &controllers.Sweeper{Reserver: leases, Interval: 30 * time.Second}
	if _, err := controllers.WatchPodMetadata(ctx, mgr.GetCache(), sweeper); err != nil {
		return fmt.Errorf("blast-radius sweeper: %w", err)
	}
	if err := mgr.Add(sweeper); err != nil {
		return fmt.Errorf("blast-radius sweeper: %w", err)
	}
	limiter.Reserver, limiter.Groups = leases, groups
	limiter.Owners = fwebhook.ClientOwners{Reader: mgr.GetClient()}
	return nil
}
